#!/usr/bin/perl

# Health lives in the shared zone: every worker sees the same ejection,
# and a reload keeps it.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');

my %o = (upstream => 'exchange_health_eject time=60s;',
         location => 'exchange_health_retry off;',
         worker_processes => 4);

my $ng = EH::Front::nginx($farm, %o);
$ng->start;
is scalar($ng->worker_pids), 4, 'four workers';

my $user = 0;
for (1 .. 30) {
    $ng->request(GET => '/owa/', signed_in => 'u' . ++$user);
    last if EH::Front::changes($ng, 'ejected');
}
is scalar(EH::Front::changes($ng, 'ejected')), 1, 'EXCH2 ejected once';

# new connections land on any worker: all must avoid EXCH2
$farm->clear_logs;
my $before = () = EH::Front::verdicts($ng);
$ng->request(GET => '/owa/', signed_in => 'u' . ++$user) for 1 .. 60;
my @v = EH::Front::wait_verdicts($ng, $before + 60);
my %pids = map { $_->{pid} => 1 } @v[$before .. $#v];
cmp_ok scalar(keys %pids), '>=', 2, 'requests were served by several workers';
is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
    'no worker sends OWA to EXCH2';

# a reload starts new workers with the same zone
my @old = sort $ng->worker_pids;
$ng->reload;
my @new = sort $ng->worker_pids;
ok !grep({ my $p = $_; grep { $_ == $p } @old } @new), 'all workers are new';

$farm->clear_logs;
$ng->request(GET => '/owa/', signed_in => 'u' . ++$user) for 1 .. 30;
is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
    'after the reload EXCH2 is still ejected';
is $farm->total_hits(path => '^/owa/'), 30, '... and the others serve';
is scalar(EH::Front::changes($ng, 'ejected')), 1, 'no second ejection';

# a reload with another configuration of the same upstream keeps it too
$ng->reload(http => EH::Front::nginx($farm, %o,
    upstream => 'exchange_health_eject time=60s fails=5;')->{http});
$farm->clear_logs;
$ng->request(GET => '/owa/', signed_in => 'u' . ++$user) for 1 .. 12;
is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
    'a changed configuration keeps the state';

# a stop and a start begin afresh
$ng->stop;
$ng->start;
$farm->heal;
$farm->clear_logs;
$ng->request(GET => '/owa/', signed_in => 'u' . ++$user) for 1 .. 12;
cmp_ok $farm->server('EXCH2')->hits(path => '^/owa/'), '>', 0,
    'after a restart EXCH2 takes traffic again';

$ng->stop;
done_testing;
