#!/usr/bin/perl

# A zone too small for the upstream's servers: those that do not fit are
# not tracked, take traffic as plain round robin would, and are never
# judged.  Every path that reads a server's record must cope: failures,
# the farm-wide fault (a worker died there with the zone's lock held),
# trials, probes, admin orders, the status page in its three formats, and
# the state file.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes qw(sleep);

my $farm = farm(tls => 1, n => 8);
my $state = run_dir() . '/exchange.state';

my $ng = EH::Front::nginx($farm, zone => "32k state=$state",
    upstream => "exchange_health_eject time=1s;\n"
              . 'exchange_health_probe interval=1s timeout=1s protocols=owa;',
    server => <<'CONF');
server_name mail.contoso.com;
location = /status { exchange_health_status; }
location = /admin { exchange_health_status admin=on; }
CONF
$ng->start;

like $ng->error_log, qr/zone "exchange" is full: some servers are not tracked/,
    'the full zone is logged at start';

my ($j) = EH::Front::status_json($ng);
my $up = $j->{upstreams}[0];
my %tracked = map { $_->{address} => 1 } @{ $up->{servers} };
my @untracked = grep { !$tracked{ $farm->server($_)->addr } } $farm->names;
cmp_ok scalar(@untracked), '>', 0, 'some servers did not fit: ' . "@untracked";
is $up->{untracked}, scalar(@untracked), 'JSON: untracked counts them';
is scalar(keys %tracked) + $up->{untracked}, 8, '... with the tracked ones, all 8';

my $h = $ng->request(GET => '/status')->{body};
like $h, qr/\Q${\ scalar @untracked} servers are not tracked\E.*zone "exchange" is full/s,
    'HTML: says so, naming the zone';
my $prom = $ng->request(GET => '/status?format=prometheus')->{body};
like $prom, qr/^exchange_health_untracked_servers\{upstream="exchange"\} \Q${\ scalar @untracked}\E$/m,
    'Prometheus: exchange_health_untracked_servers';

subtest 'admin orders' => sub {
    my $r = $ng->request(POST => '/admin?action=drain&server='
                                 . $farm->server($untracked[0])->addr, body => '',
                         headers => { 'X-Exchange-Health-Admin' => 1 });
    is $r->{status}, 409, 'an untracked server cannot be drained: 409';
    like $r->{body}, qr/not tracked: its exchange_health_zone is full/,
        '... and the answer says why';
    my ($t) = keys %tracked;
    $r = $ng->request(POST => "/admin?action=drain&server=$t", body => '',
                      headers => { 'X-Exchange-Health-Admin' => 1 });
    is $r->{status}, 200, 'a tracked one can';
    $r = $ng->request(POST => "/admin?action=ready&server=$t", body => '',
                      headers => { 'X-Exchange-Health-Admin' => 1 });
    is $r->{status}, 200, '... and be made ready again';
};

subtest 'failures, the farm-wide fault, trials' => sub {
    $farm->server($_)->preset('seed') for $farm->names;
    my $m = $ng->mark;
    my @r = map { $ng->request(GET => '/owa/', signed_in => "u$_") } 1 .. 40;
    is scalar(grep { defined $_->{status} } @r), 40,
        'every request on a farm broken everywhere got an answer';
    unlike $ng->error_log_since($m), qr/exited on signal|was locked by/,
        'no worker died';
    ok scalar(EH::Front::changes($ng, 'farm-fault', since => $m))
       || scalar(EH::Front::changes($ng, 'ejected', since => $m)),
        'the tracked servers were judged';

    $farm->server($_)->heal for $farm->names;
    sleep 1.2;
    @r = map { $ng->request(GET => '/owa/', signed_in => "h$_") } 1 .. 30;
    is scalar(grep { ($_->{status} // 0) == 200 } @r), 30, 'healed: all well';
    unlike $ng->error_log_since($m), qr/exited on signal|was locked by/,
        'no worker died on the trials either';
};

subtest 'probes' => sub {
    $farm->clear_logs;
    ok wait_until(sub {
            2 <= grep { $farm->server($_)->hits(path => '^/owa/healthcheck') }
                 keys %{{ map { $farm->name_of($_) => 1 } keys %tracked }} },
            timeout => 5),
        'the tracked servers are probed';
    is scalar(grep { $farm->server($_)->hits(path => '^/owa/healthcheck') }
              @untracked), 0, 'the untracked ones are not';
};

subtest 'the state file' => sub {
    $ng->stop;
    ok -s $state, 'written at exit';
    my $text = slurp($state);
    for my $u (@untracked) {
        my $a = $farm->server($u)->addr;
        unlike $text, qr/\Q$a\E/, "$u is not in it";
    }
    $ng->start;
    like $ng->error_log, qr/zone "exchange" is full/, 'read back on start';
    my ($j2) = EH::Front::status_json($ng);
    is $j2->{upstreams}[0]{untracked}, scalar(@untracked),
        'the same servers untracked';
    $ng->stop;
};

done_testing;
