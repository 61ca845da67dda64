#!/usr/bin/perl

# Health outlives a restart through the state file: a server known to be
# broken stays out after a full stop and start; a missing or corrupt file
# is logged and ignored, and never stops nginx.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');

my $state = run_dir() . '/exchange.state';
my %o = (zone => "1m state=$state",
         upstream => 'exchange_health_eject time=10m;',
         location => 'exchange_health_retry off;',
         worker_processes => 2,
         server => 'location = /status { exchange_health_status; }');

my $ng = EH::Front::nginx($farm, %o);
$ng->start;
like $ng->error_log, qr/no state file ".*exchange\.state" to read, starting afresh/,
    'a missing state file is noted';

$ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;
$ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 12;
is scalar(EH::Front::changes($ng, 'ejected')), 1, 'EXCH2 ejected';

$ng->stop;
ok -s $state, 'the state was written when nginx stopped';
my $text = slurp($state);
like $text, qr/^exchange-health-state 1$/m, 'with its header';
like $text, qr/^slot exchange \Q${\ $farm->server('EXCH2')->addr }\E owa state=ejected until=\d+ level=1 /m,
    'EXCH2 ejected for owa';
like $text, qr/name=EXCH2 fqdn=exch2\.contoso\.local/, 'its names';
like $text, qr/rule=errorfe-redirect method=GET uri=\/owa\/ error=Microsoft\.Exchange/,
    'its last failure';
like $text, qr/^end$/m, 'and its end';

# a full stop and start: the broken server stays out
$ng = EH::Front::nginx($farm, %o);
$ng->start;
like $ng->error_log, qr/state read from ".*exchange\.state"/, 'the file was read';

$farm->clear_logs;
$ng->request(GET => '/owa/', signed_in => "later$_") for 1 .. 9;
is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
    'after the restart no OWA request reaches EXCH2';

my $j = $ng->request(GET => '/status?format=json')->{body};
like $j, qr/"name":"EXCH2"[^]]*"owa":\{"state":"ejected"/,
    'the status page shows it ejected, named';
like $j, qr/"rule":"errorfe-redirect"/, '... with its last failure';
$ng->stop;

# a corrupt file: logged, ignored, nginx runs
for my $bad (["exchange-health-state 1\nslot exchange x owa state=up\n",
              qr/line 0: no "end": the file was cut short/],
             ["garbage\n", qr/line 1: not an exchange_health state file of version 1/],
             ["exchange-health-state 1\nslot exchange x owa level=999\nend\n",
              qr/line 2: a value out of range/])
{
    spew($state, $bad->[0]);
    $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    like $ng->error_log, qr/state file ".*exchange\.state" $bad->[1]; the file is ignored/,
        'a bad file is logged, naming its line';
    is $ng->request(GET => '/owa/', signed_in => 'x')->{status}, 200,
        '... and nginx serves';
    $ng->stop;
}

# a file from elsewhere (edited, or a clock set back): an ejection far
# ahead is cut to a day, "-" reads back as empty, a user's failure stays one
{
    my $addr = $farm->server('EXCH2')->addr;
    my $now = time;
    my $far = $now + 10 * 365 * 86400;
    spew($state, <<"STATE");
exchange-health-state 1
server exchange $addr name=EXCH2
slot exchange $addr owa state=ejected until=$far level=1 admin=none since=$now failures=3 user_failures=1 rescued=0 ejections=1
last exchange $addr owa time=$now status=302 user=1 rule=errorfe-redirect method=GET uri=/owa/ error=-
end
STATE
    $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    my ($s) = EH::Front::status_json($ng);
    my ($x) = grep { $_->{name} eq 'EXCH2' } @{ $s->{upstreams}[0]{servers} };
    my $owa = $x->{protocols}{owa};
    is $owa->{state}, 'ejected', 'restored ejected';
    my ($y, $mo, $d, $h, $mi, $se) =
        ($owa->{ejected_until} // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/;
    require Time::Local;
    my $until = defined $y
        ? Time::Local::timegm($se, $mi, $h, $d, $mo - 1, $y) : 0;
    ok $until > $now && $until <= time + 86400 + 5,
       'an ejection ten years ahead is cut to a day'
       or diag "ejected_until: " . ($owa->{ejected_until} // 'none');
    is $owa->{last_failure}{error}, '', '"-" is read back as empty';
    like $owa->{hint} // '', qr/one user's/,
        'a failure that was one user\'s keeps its hint';
    $ng->stop;
}

# every field of every record survives a stop and a start: what is read
# is written back the same (the ejection's end, a wall-clock time made
# from nginx's own clock, within a second or two)
{
    my $a2 = $farm->server('EXCH2')->addr;
    my $a3 = $farm->server('EXCH3')->addr;
    my $now = time;
    my ($t1, $t2, $t3, $until) = ($now - 7200, $now - 3600, $now - 60,
                                  $now + 600);
    my @lines = (
        "farm exchange owa fault=1 since=$t1 request_failures=17",
        "farm exchange ecp fault=0 since=$t2 request_failures=4",
        "server exchange $a2 name=EXCH2 fqdn=exch2.contoso.local",
        "slot exchange $a2 owa state=ejected until=$until level=3 admin=drain since=$t2 failures=41 user_failures=5 rescued=39 ejections=3",
        "last exchange $a2 owa time=$t3 status=500 user=0 rule=errorfe-page method=POST uri=/owa/service.svc?action%3DGetItem error=Microsoft.Exchange.Data.Storage.StoragePermanentException",
        "slot exchange $a2 ecp state=up level=0 admin=maintenance since=$t1 failures=0 user_failures=2 rescued=0 ejections=0",
        "last exchange $a2 ecp time=$t2 status=302 user=1 rule=errorfe-redirect method=GET uri=/ecp/ error=-",
        "server exchange $a3 name=EXCH3 fqdn=-",
    );
    spew($state, join("\n", 'exchange-health-state 1', @lines, 'end') . "\n");
    $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    $ng->stop;
    my @back = grep { !/^#/ && !/^exchange-health-state|^end$/ }
               split /\n/, slurp($state);
    my ($got) = map { /until=(\d+)/ ? $1 : () } @back;
    ok defined $got && abs($got - $until) <= 2,
       'round trip: the ejection ends when it did'
       or diag "until=" . ($got // 'none') . ", read $until";
    s/until=\d+/until=U/ for @lines, @back;
    my %back = map { $_ => 1 } @back;
    my @lost = grep { !$back{$_} } @lines;
    is "@lost", '', 'round trip: every record and field written back as read';
    # servers the file did not name are written with their names only
    my @extra = grep { my $l = $_; !grep { $_ eq $l } @lines } @back;
    ok !grep({ !/^server exchange \S+ name=\S+ fqdn=\S+$/ && !/^server /
             } @extra), 'round trip: nothing else but the farm\'s servers'
        or diag join "\n", @extra;
}

# a farm-wide fault read back names nobody who failed: the first good
# answer to a signed-in user, from any server, ends it
{
    $farm->heal;
    spew($state, join("\n", 'exchange-health-state 1',
                      'farm exchange owa fault=1 since=' . (time - 60)
                      . ' request_failures=3', 'end') . "\n");
    $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    my ($j) = EH::Front::status_json($ng);
    is $j->{upstreams}[0]{farm}{owa}{fault}, JSON::PP::true(),
        'a farm-wide fault read back';
    is $ng->request(GET => '/owa/', signed_in => 'back')->{status}, 200,
        '... a signed-in user answered well';
    my @cleared = EH::Front::changes($ng, 'farm-cleared');
    is scalar(@cleared), 1, '... ends it, whichever server answered';
    $ng->stop;
}

# the state is saved while running, too (every few seconds, when changed)
unlink $state;
$farm->heal;
$ng = EH::Front::nginx($farm, %o);
$ng->start;
$farm->server('EXCH2')->preset('seed');
$ng->request(GET => '/owa/', signed_in => "run$_") for 1 .. 12;
ok wait_until(sub { -s $state && slurp($state) =~ /state=ejected/ },
              timeout => 12),
   'written within seconds of the change, nginx running';
$ng->stop;

done_testing;
