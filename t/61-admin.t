#!/usr/bin/perl

# The admin API on the status location: off by default; when on, an
# authorised operator drains a server, puts it in maintenance, makes it
# ready, or clears its failure history, per protocol or for all; it
# answers in JSON, is logged, and refuses unauthorised or malformed
# requests.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use JSON::PP ();

my $farm = farm(tls => 1);

my $htpasswd = run_dir() . '/htpasswd';
my $hash = `openssl passwd -apr1 s3cret`;
chomp $hash;
spew($htpasswd, "ops:$hash\n");

my $basic = 'Basic ' . MIME::Base64::encode_base64('ops:s3cret', '');

sub admin {
    my ($ng, $query, %o) = @_;
    my $r = $ng->request(POST => "/admin?$query", body => '',
        headers => { Authorization => $basic, 'X-Exchange-Health-Admin' => 1,
                     %{ $o{headers} || {} } });
    my $j = eval { JSON::PP->new->utf8->decode($r->{body}) };
    return ($r->{status}, $j);
}

require MIME::Base64;

# off by default: the status page takes no orders
{
    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    my $r = $ng->request(POST => '/status?action=drain&server=EXCH2',
                         body => '');
    is $r->{status}, 405, 'admin API off by default: POST is not allowed';
    $ng->stop;
}

my $ng = EH::Front::nginx($farm,
    upstream => 'exchange_health_eject time=10m;',
    server => <<"LOC");
server_name mail.contoso.com;
    location = /admin {
        exchange_health_status admin=on;
        auth_basic "Exchange health";
        auth_basic_user_file $htpasswd;
    }
    location = /status { exchange_health_status; }
LOC
$ng->start;
$ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;    # learn names

subtest 'unauthorised' => sub {
    my $r = $ng->request(POST => '/admin?action=drain&server=EXCH2',
                         body => '');
    is $r->{status}, 401, 'no credentials: 401';
    $r = $ng->request(POST => '/admin?action=drain&server=EXCH2', body => '',
        headers => { Authorization => 'Basic '
                     . MIME::Base64::encode_base64('ops:wrong', '') });
    is $r->{status}, 401, 'wrong password: 401';
    my ($st, $j) = admin($ng, 'action=drain&server=EXCH2',
                         headers => { Origin => 'https://evil.example' });
    is $st, 403, 'a request from another site: 403';
    is $j->{ok}, JSON::PP::false(), '... in JSON';
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 2, 'nothing was drained';
};

subtest 'malformed' => sub {
    for my $case (['server=EXCH2', 400, qr/no action/],
                  ['action=explode&server=EXCH2', 400, qr/unknown action/],
                  ['action=drain', 400, qr/no server/],
                  ['action=drain&server=EXCH9', 404, qr/no such server/],
                  ['action=drain&server=EXCH2&protocol=smtp', 400,
                   qr/unknown protocol/])
    {
        my ($st, $j) = admin($ng, $case->[0]);
        is $st, $case->[1], "$case->[0]: $case->[1]";
        like $j && $j->{error}, $case->[2], '... saying why in JSON';
    }
};

subtest 'drain for one protocol' => sub {
    my ($st, $j) = admin($ng, 'action=drain&server=EXCH2&protocol=owa');
    is $st, 200, 'drained';
    is_deeply [ @$j{qw(ok action server protocol upstream address)} ],
        [ JSON::PP::true(), 'drain', 'EXCH2', 'owa', 'exchange',
          $farm->server('EXCH2')->addr ], 'the answer says what was done';
    like $ng->error_log, qr/\[warn\].*server \S+ \(EXCH2\): drain for owa, by the admin API \(from 127\.0\.0\.1, user "ops"\)/,
        'and it is logged, with who did it';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 6;
    $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "u$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 0, 'no OWA to EXCH2';
    is $farm->server('EXCH2')->hits(path => '^/EWS/'), 2, 'EWS still';

    my ($s) = EH::Front::status_json($ng);
    my ($x) = grep { $_->{name} eq 'EXCH2' } @{ $s->{upstreams}[0]{servers} };
    is $x->{protocols}{owa}{state}, 'draining', 'the status page says draining';
};

subtest 'maintenance for all, by address, then ready' => sub {
    my $addr = $farm->server('EXCH2')->addr;
    my ($st, $j) = admin($ng, "action=maintenance&server=$addr");
    is $st, 200, 'maintenance by address';
    is $j->{protocol}, 'all', 'for all protocols';

    $farm->clear_logs;
    $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "u$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0, 'EXCH2 takes nothing';

    ($st) = admin($ng, 'action=ready&server=exch2');
    is $st, 200, 'ready, by its name in any case';
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 2,
        'EXCH2 takes its share again';
};

subtest 'clear the failure history' => sub {
    $farm->server('EXCH2')->preset('seed');
    $ng->request(GET => '/owa/', signed_in => "s$_") for 1 .. 12;
    is scalar(EH::Front::changes($ng, 'ejected')), 1, 'EXCH2 ejected';
    $farm->server('EXCH2')->heal;

    my ($st) = admin($ng, 'action=clear&server=EXCH2&protocol=owa');
    is $st, 200, 'cleared';

    my ($s) = EH::Front::status_json($ng);
    my ($x) = grep { $_->{name} eq 'EXCH2' } @{ $s->{upstreams}[0]{servers} };
    is $x->{protocols}{owa}{state}, 'healthy', 'healthy again';
    is $x->{protocols}{owa}{failures}, 0, 'no failures';
    is $x->{protocols}{owa}{last_failure}, undef, 'no last failure';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "c$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 2, 'and takes traffic';
};

subtest 'GET does not act' => sub {
    my $r = $ng->request(GET => '/admin?action=drain&server=EXCH2',
                         headers => { Authorization => $basic });
    is $r->{status}, 200, 'GET shows the status page';
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "g$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 2, 'nothing drained';
};

$ng->stop;

# scope=server: one state per server, so an order for one protocol is an
# order for the server
{
    my $ng = EH::Front::nginx($farm,
        balancer => 'exchange_health zone=exchange scope=server;',
        server => "server_name mail.contoso.com;\n"
                . 'location = /admin { exchange_health_status admin=on; }');
    $ng->start;
    $ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;

    my $r = $ng->request(POST => '/admin?action=drain&server=EXCH2'
                                 . '&protocol=ews', body => '',
                         headers => { 'X-Exchange-Health-Admin' => 1 });
    is $r->{status}, 200, 'scope=server: drain for ews accepted';
    like $r->{body}, qr/"protocol":"all"/, '... and done for all protocols';
    like $ng->error_log,
        qr/\(EXCH2\): drain for all protocols, by the admin API \(from 127\.0\.0\.1\)/,
        '... logged as for all protocols, from the address';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "p$_") for 1 .. 6;
    $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "p$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0, '... and EXCH2 takes nothing at all';
    $ng->stop;
}

done_testing;
