#!/usr/bin/perl

# The ejection policy: re-admission by a signed-in trial once the server
# heals, longer ejection after a failed trial up to max_time, never the
# whole farm (farm-wide fault instead), max_ejected, scope=server, and
# round robin's own parameters (weight, backup, down) kept.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes qw(sleep);

my $farm = farm(tls => 1);
my $user = 0;

# signed-in requests from new users until $cond holds (at most $max)
# signed-in users, six of them in turn, as a farm's users come back:
# only a session Exchange signed in before may be an ejected server's
# trial
sub drive {
    my ($ng, $path, $max, $cond) = @_;
    for (1 .. $max) {
        $ng->request(GET => $path, signed_in => 'u' . ($user++ % 6 + 1));
        return 1 if $cond && $cond->();
    }
    return !$cond;
}

sub ejected {
    my ($ng, $name, %o) = @_;
    return grep { $_->{server} eq $name } EH::Front::changes($ng, 'ejected', %o);
}

subtest 're-admitted by a signed-in trial after healing' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=1s;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    is scalar(ejected($ng, 'EXCH2')), 1, 'EXCH2 ejected';

    $farm->server('EXCH2')->heal;
    sleep 1.2;

    # the logon page proves nothing: unsigned requests are no trial
    $farm->clear_logs;
    $ng->request(GET => '/owa/') for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0,
        'ejection time over: still no unsigned request reaches EXCH2';
    is scalar(EH::Front::changes($ng, 'trial')), 0, 'no trial yet';

    my $m = $ng->mark;
    drive($ng, '/owa/', 12, sub { EH::Front::changes($ng, 'readmitted') });

    my @trial = EH::Front::changes($ng, 'trial', since => $m);
    is scalar(@trial), 1, 'one trial request';
    is $trial[0]{server}, 'EXCH2', '... sent to EXCH2';
    my @back = EH::Front::changes($ng, 'readmitted', since => $m);
    is scalar(@back), 1, 'EXCH2 re-admitted after its good answer';
    is $back[0]{protocol}, 'owa', '... for owa';

    # a state change is the module's decision, not a step of nginx's
    # upstream: no line says "while connecting to upstream" or the like
    my @lines = map { $_->{line} }
                map { EH::Front::changes($ng, $_) }
                qw(ejected trial readmitted);
    is scalar(@lines), 3, 'the ejection, the trial, the re-admission';
    is_deeply [grep { / while / } @lines], [],
        '... each ends with the request, without nginx\'s "while ..."';
    like $trial[0]{line}, qr/with GET \/owa\/, client: /,
        'the trial line goes from the request path to the client';

    $farm->clear_logs;
    drive($ng, '/owa/', 9);
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 3,
        'EXCH2 takes its share of OWA again';

    $ng->stop;
};

subtest 'a failed trial ejects again for longer, up to max_time' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=1s max_time=3s;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    like((ejected($ng, 'EXCH2'))[0]{line}, qr/ejected for owa for 1s /,
         'first ejection for 1s');

    my @want = (2, 3, 3);    # seconds: doubled, then capped

    for my $i (0 .. $#want) {
        my $m = $ng->mark;
        sleep(($i == 0 ? 1 : $want[$i - 1]) + 0.1);
        drive($ng, '/owa/', 9,
              sub { EH::Front::changes($ng, 'trial-failed', since => $m) });

        my @tf = EH::Front::changes($ng, 'trial-failed', since => $m);
        is scalar(@tf), 1, "trial " . ($i + 1) . " failed";
        like $tf[0]{line}, qr/ejected again for $want[$i]s:/,
            "... ejected again for $want[$i]s";
    }

    is scalar(EH::Front::changes($ng, 'readmitted')), 0, 'never re-admitted';
    $ng->stop;
};

subtest 'never the whole farm: a farm-wide fault instead' => sub {
    $farm->heal;
    $_->preset('seed') for $farm->servers;

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=60s;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 40, sub { EH::Front::changes($ng, 'farm-fault') });

    my @ej = EH::Front::changes($ng, 'ejected');
    my @ff = EH::Front::changes($ng, 'farm-fault');
    is scalar(@ej), 2, 'two of three servers ejected';
    is scalar(@ff), 1, 'then a farm-wide fault, logged once';
    is $ff[0]{protocol}, 'owa', '... for owa';
    like $ff[0]{line}, qr/2 servers were ejected and take traffic again/,
        '... which re-admits the ejected servers';

    $farm->clear_logs;
    drive($ng, '/owa/', 12);
    my $hits = $farm->hits(path => '^/owa/');
    is scalar(grep { $hits->{$_} > 0 } keys %$hits), 3,
        'during the fault every server takes traffic'
        or diag explain $hits;
    is scalar(EH::Front::changes($ng, 'ejected')), 2, 'and none is ejected';

    $farm->heal;
    drive($ng, '/owa/', 3, sub { EH::Front::changes($ng, 'farm-cleared') });
    is scalar(EH::Front::changes($ng, 'farm-cleared')), 1,
        'a good signed-in answer clears the fault';

    $ng->stop;
};

subtest 'max_ejected' => sub {
    $farm->heal;
    $farm->server($_)->preset('seed') for qw(EXCH1 EXCH2);

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject max_ejected=1;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 30, sub { EH::Front::changes($ng, 'farm-fault') });

    is scalar(EH::Front::changes($ng, 'ejected')), 1,
        'max_ejected=1: one server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 1,
        'the second failing server makes a farm-wide fault';

    $ng->stop;
};

subtest 'scope=server takes the server out for every protocol' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        balancer => 'exchange_health zone=exchange scope=server;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    my @ej = ejected($ng, 'EXCH2');
    is scalar(@ej), 1, 'EXCH2 ejected';
    is $ej[0]{protocol}, 'all protocols', '... for all protocols';

    $farm->clear_logs;
    drive($ng, '/EWS/Exchange.asmx', 6);
    drive($ng, '/Microsoft-Server-ActiveSync', 6);
    is $farm->server('EXCH2')->hits, 0, 'EWS and ActiveSync avoid EXCH2 too';

    $ng->stop;
};

subtest 'weight, backup and down keep their meaning' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        params => { EXCH1 => 'weight=2', EXCH3 => 'backup' },
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    is scalar(ejected($ng, 'EXCH2')), 1, 'EXCH2 ejected';

    $farm->clear_logs;
    drive($ng, '/owa/', 6);
    is_deeply $farm->hits(path => '^/owa/'),
              { EXCH1 => 6, EXCH2 => 0, EXCH3 => 0 },
              'the remaining primary serves, the backup stays idle';

    $farm->server('EXCH1')->preset('dead');
    $farm->clear_logs;
    my $r = $ng->request(GET => '/owa/', signed_in => 'backup-user');
    is $r->{status}, 200, 'with EXCH1 dead the request still succeeds';
    is $r->header('X-FEServer'), 'EXCH3', '... on the backup server';
    $ng->stop;

    # weights: 2:1 between EXCH1 and EXCH3 once EXCH2 is out
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    $ng = EH::Front::nginx($farm, params => { EXCH1 => 'weight=2' },
                           location => 'exchange_health_retry off;');
    $ng->start;
    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    $farm->clear_logs;
    drive($ng, '/owa/', 12);
    is_deeply $farm->hits(path => '^/owa/'),
              { EXCH1 => 8, EXCH2 => 0, EXCH3 => 4 },
              'weights hold among the servers left';
    $ng->stop;

    # down: a "down" server does not count as one that keeps the farm up
    $farm->heal;
    $farm->server($_)->preset('seed') for qw(EXCH1 EXCH2);
    $ng = EH::Front::nginx($farm, params => { EXCH3 => 'down' },
                           location => 'exchange_health_retry off;');
    $ng->start;
    drive($ng, '/owa/', 20, sub { EH::Front::changes($ng, 'farm-fault') });
    is scalar(EH::Front::changes($ng, 'ejected')), 1,
        'with EXCH3 down, one of the two others may be ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 1,
        'the other failing too is a farm-wide fault';
    $farm->clear_logs;
    drive($ng, '/owa/', 6);
    is $farm->server('EXCH3')->hits, 0, 'the down server never gets requests';
    $ng->stop;
};

subtest 'a failing backup server is counted, not ejected' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH3')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        params => { EXCH1 => 'down', EXCH2 => 'down', EXCH3 => 'backup' },
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 9);
    is $farm->server('EXCH3')->hits(path => '^/owa/'), 9,
        'with every primary down the backup serves';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'it is not ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'and its failures are no farm-wide fault';
    my @v = EH::Front::wait_verdicts($ng, 9);
    is scalar(grep { $_->{verdict} eq 'failure' } @v), 9,
        'each failure is counted';
    $ng->stop;
};

subtest 'works with the upstream zone and keepalive' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
        before => 'zone exchange_peers 64k;',
        upstream => 'keepalive 8;',
        location => 'exchange_health_retry off;');
    $ng->start;

    drive($ng, '/owa/', 12, sub { ejected($ng, 'EXCH2') });
    is scalar(ejected($ng, 'EXCH2')), 1, 'EXCH2 ejected';
    $farm->clear_logs;
    drive($ng, '/owa/', 6);
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
        'and avoided, with zone and keepalive';
    ok $farm->server('EXCH1')->last_request->{n} > 1,
        'upstream connections are kept alive';

    $ng->stop;
};

done_testing;
