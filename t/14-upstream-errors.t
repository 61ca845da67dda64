#!/usr/bin/perl

# nginx's own failures count against a server as max_fails counts them
# (upstream-error, upstream-timeout, upstream-status), and failures nginx
# retries by itself (proxy_next_upstream http_500) are still judged and
# attributed to the server that gave them.  nginx's max_fails keeps
# working with the balancer, and a one-server upstream never has its only
# server ejected.
#
# Most upstreams here say max_fails=0: nginx's default (max_fails=1
# fail_timeout=10s) would take a failing server out after its first
# failure, and the module, which ejects after 3, would not see the next
# two for 20 s.  The max_fails section shows that interplay on its own.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);
my %addr = map { $_ => $farm->server($_)->addr } $farm->names;
my $no_max_fails = { map { $_ => 'max_fails=0' } $farm->names };

# upstream_addr of a verdict line as server names: "EXCH2,EXCH1"
sub path_of {
    my ($v) = @_;
    return join ',', map { $farm->name_of($_) // $_ } split /, /, $v->{upstream_addr};
}

# Requests that reached $name (first or retried), from the verdict log.
sub tried {
    my ($name, @v) = @_;
    return grep { path_of($_) =~ /\b$name\b/ } @v;
}

sub start_front {
    my (%o) = @_;
    my $ng = EH::Front::nginx($farm, params => $no_max_fails,
                              upstream => 'exchange_health_eject time=60s;', %o);
    $ng->start;
    return $ng;
}

# --------------------------------------------------------------------
# 1. EXCH2 closes every connection: nginx retries (proxy_next_upstream
#    error timeout, the default), the module counts each as a confirmed
#    failure: one user suffices.
{
    my $name = 'dead server';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('dead');
    my $ng = start_front();

    my @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200 (nginx retries)";
    is $farm->server('EXCH2')->hits(path => '^/owa'), 3,
        "$name: EXCH2 was tried 3 times before its ejection";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{protocol}, 'owa', "$name: for owa";
    is $ej[0]{rule}, 'upstream-error', "$name: rule upstream-error";
    like $ej[0]{line}, qr/after 3 failures/, "$name: after 3 failures of one user";

    my @v = EH::Front::wait_verdicts($ng, 9);
    my @retried = grep { path_of($_) =~ /^EXCH2,/ } @v;
    is scalar(@retried), 3, "$name: 3 requests went EXCH2 then elsewhere";
    is join(' ', map { $_->{status} } @retried), '200 200 200',
        "$name: and got 200";
    isnt $_->{verdict}, 'upstream-error', "$name: a retried request's verdict is not upstream-error"
        for @retried;
    # "rescued": a server failed, another answered well, whoever retried
    is join(' ', map { $_->{verdict} } @retried), 'rescued rescued rescued',
        "$name: their verdict is rescued";

    $farm->clear_logs;
    @st = map { $ng->request(GET => '/owa/', signed_in => "later$_")->{status} } 1 .. 6;
    is_deeply \@st, [ (200) x 6 ], "$name: later requests get 200";
    is $farm->server('EXCH2')->hits, 0, "$name: no owa request reaches EXCH2 after ejection";
    is $farm->total_hits(path => '^/owa'), 6, "$name: EXCH1 and EXCH3 took them";

    # ejected for owa only: EWS still tries EXCH2 (and nginx retries)
    $farm->clear_logs;
    @st = map { $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "ews$_")->{status} } 1 .. 3;
    is_deeply \@st, [ (200) x 3 ], "$name: EWS clients get 200";
    ok $farm->server('EXCH2')->hits(path => '^/EWS/') >= 1,
        "$name: EWS still reaches EXCH2 (ejected for owa only)";

    $ng->stop;
}

# --------------------------------------------------------------------
# 2. EXCH2 stopped: connection refused.
{
    my $name = 'connection refused';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->stop;
    my $ng = start_front();

    my @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200 (nginx retries)";
    ok scalar($ng->grep_error_log(qr/connect\(\) failed \(111: Connection refused\)/)),
        "$name: nginx saw connection refused";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{protocol}, 'owa', "$name: for owa";
    is $ej[0]{rule}, 'upstream-error', "$name: rule upstream-error";

    my @v = EH::Front::wait_verdicts($ng, 9);
    is scalar(tried('EXCH2', @v)), 3, "$name: EXCH2 tried by 3 requests";

    $ng->request(GET => '/owa/', signed_in => "later$_") for 1 .. 6;
    @v = EH::Front::wait_verdicts($ng, 15);
    is scalar(tried('EXCH2', @v[9 .. $#v])), 0,
        "$name: later owa requests do not try EXCH2";
    is join(' ', map { $_->{status} } @v[9 .. $#v]), join(' ', (200) x 6),
        "$name: and get 200";

    $ng->stop;
    $farm->server('EXCH2')->start;
}

# --------------------------------------------------------------------
# 3. EXCH2 answers after proxy_read_timeout.
{
    my $name = 'timeout';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa', delay => 3 });
    my $ng = start_front(location => 'proxy_read_timeout 1s;');

    my @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200 (nginx retries)";
    is scalar($ng->grep_error_log(qr/upstream timed out/)), 3,
        "$name: nginx timed out on EXCH2 3 times";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{protocol}, 'owa', "$name: for owa";
    is $ej[0]{rule}, 'upstream-timeout', "$name: rule upstream-timeout";

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "later$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0, "$name: no owa request reaches EXCH2 after ejection";

    $ng->stop;
}

# --------------------------------------------------------------------
# 3b. An invalid header, and a connection closed in the middle of the
#     header: "upstream-error" (docs/directives.md: "cannot connect,
#     closed connection, invalid header"), whether nginx retries them
#     (invalid_header listed) or not (the client then gets nginx's 502,
#     and the failure counts all the same, as max_fails counts it).
for my $c (
    { name => 'invalid header, retried', pnu => 'error timeout invalid_header',
      route => { raw => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nBad\x01Name: x\r\n\r\n" },
      log => qr/upstream sent invalid header/, client => [ (200) x 9 ] },
    { name => 'invalid header, not retried', pnu => undef,
      route => { raw => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nBad\x01Name: x\r\n\r\n" },
      log => qr/upstream sent invalid header/,
      client => [ 200, 502, 200, 200, 502, 200, 200, 502, 200 ] },
    { name => 'closed inside the header',  pnu => undef,
      route => { capture => 'owa-signed-in', truncate => 40 },
      log => qr/upstream prematurely closed connection while reading response header/,
      client => [ (200) x 9 ] },
)
{
    my $name = $c->{name};
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa', %{ $c->{route} } });
    my $ng = start_front($c->{pnu} ? (location => "proxy_next_upstream $c->{pnu};") : ());

    my @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} // 0 } 1 .. 9;
    is "@st", "@{ $c->{client} }", "$name: what the clients get";
    is scalar($ng->grep_error_log($c->{log})), 3, "$name: nginx saw it 3 times";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{rule}, 'upstream-error', "$name: rule upstream-error"
        or diag $ej[0]{line};
    my @v = EH::Front::wait_verdicts($ng, 9);
    is join(' ', map { $_->{verdict} } grep { $_->{status} == 502 } @v),
        join(' ', ('upstream-error') x grep { $_ == 502 } @{ $c->{client} }),
        "$name: a 502 from nginx has the verdict upstream-error";

    $ng->stop;
}

# --------------------------------------------------------------------
# 4. proxy_next_upstream http_500, module retry off: nginx retries the
#    OWA service 500 by itself; the module still judges it (fe500) and
#    the other server's good answer confirms it.
{
    my $name = 'nginx retries http_500';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa/service\.svc', signed_in => 1,
                                      capture => 'owa-service-500' });
    my $ng = start_front(location => "proxy_next_upstream error timeout http_500;\n"
                                   . "        exchange_health_retry off;");

    my @st = map { $ng->request(GET => '/owa/service.svc?action=GetFolder',
                                signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200";
    is $farm->server('EXCH2')->hits(path => '^/owa/service\.svc', capture => 'owa-service-500'), 3,
        "$name: EXCH2 answered 500 3 times";
    is scalar($ng->grep_error_log(qr/trying another server/)), 0,
        "$name: the module did not retry (retry off): nginx did";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{server}, 'EXCH2', "$name: named by its X-FEServer";
    is $ej[0]{protocol}, 'owa', "$name: for owa";
    is $ej[0]{rule}, 'fe500', "$name: rule fe500, not upstream-status";
    like $ej[0]{line}, qr/status 500/, "$name: status 500 logged";

    my @v = EH::Front::wait_verdicts($ng, 9);
    my @retried = grep { path_of($_) =~ /^EXCH2,/ } @v;
    is scalar(@retried), 3, "$name: 3 requests went EXCH2 then elsewhere";
    is join(' ', map { $_->{upstream_status} } @retried), join(' ', ('500, 200') x 3),
        "$name: upstream_status 500, 200";
    is join(' ', map { $_->{verdict} } @retried), 'rescued rescued rescued',
        "$name: their verdict is rescued";
    is join(' ', map { $_->{verdict} } grep { path_of($_) !~ /EXCH2/ } @v),
        join(' ', ('healthy') x 6), "$name: the others are healthy";

    $farm->clear_logs;
    $ng->request(GET => '/owa/service.svc?action=GetFolder', signed_in => "later$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0, "$name: no owa request reaches EXCH2 after ejection";

    $ng->stop;
}

# --------------------------------------------------------------------
# 5. A plain 502 (no Exchange markers), as a gateway between nginx and
#    the server sends it: rule "gateway" judges it by default, with or
#    without proxy_next_upstream listing it.
{
    my $name = 'synthetic 502';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa', signed_in => 1, status => 502,
                                      headers => { 'X-FEServer' => undef,
                                                   'request-id' => undef } });

    # not listed: the module retries it all the same
    my $ng = start_front();
    my @st = map { $ng->request(GET => '/owa/', signed_in => "user$_")->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ],
        "$name, not in proxy_next_upstream: every client gets 200 (the module retries)";
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name, not in proxy_next_upstream: one ejection";
    is $ej[0]{rule}, 'gateway', "$name, not in proxy_next_upstream: rule gateway";
    $ng->stop;

    $farm->clear_logs;
    # a 502 Exchange sends itself (ActiveSync's "proxy error", the server
    # it was to reach not found) names its front end: not a gateway's
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa', signed_in => 1, status => 502,
                                      headers => { 'X-FEServer' => 'EXCH2' } });
    $ng = start_front();
    @st = map { $ng->request(GET => '/owa/', signed_in => "own$_")->{status} } 1 .. 9;
    is scalar(grep { $_ == 502 } @st), 3,
        "$name with X-FEServer: Exchange's own 502s reach the client";
    is $farm->server('EXCH2')->hits(path => '^/owa'), 3,
        "$name with X-FEServer: not retried elsewhere";
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        "$name with X-FEServer: no ejection";
    $ng->stop;
    $farm->server('EXCH2')->heal;
    $farm->server('EXCH2')->prepend({ path => '^/owa', signed_in => 1, status => 502,
                                      headers => { 'X-FEServer' => undef,
                                                   'request-id' => undef } });

    $farm->clear_logs;
    $ng = start_front(location => 'proxy_next_upstream error timeout http_502;');
    @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200";
    is $farm->server('EXCH2')->hits(path => '^/owa'), 3, "$name: EXCH2 answered 502 3 times";

    @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$name: one ejection logged" or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$name: EXCH2 ejected";
    is $ej[0]{protocol}, 'owa', "$name: for owa";
    is $ej[0]{rule}, 'gateway', "$name: rule gateway, judged before nginx's own list";
    like $ej[0]{line}, qr/status 502/, "$name: status 502 logged";

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "later$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits, 0, "$name: no owa request reaches EXCH2 after ejection";
    $ng->stop;
}

# --------------------------------------------------------------------
# 6. nginx's max_fails with the balancer: one failure disables the dead
#    server for fail_timeout, for every protocol, before the module has
#    seen enough to eject it.
{
    my $name = 'max_fails=1';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('dead');
    my $ng = EH::Front::nginx($farm,
        params => { map { $_ => 'max_fails=1 fail_timeout=30s' } $farm->names });
    $ng->start;

    my @st = map { $ng->request(GET => '/owa/', signed_in => 'alice')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], "$name: every client gets 200";
    my @dis = $ng->grep_error_log(qr/upstream server temporarily disabled/);
    is scalar(@dis), 1, "$name: nginx logs 'upstream server temporarily disabled'";
    like $dis[0] // '', qr/\[warn\].*upstream: "https:\/\/\Q$addr{EXCH2}\E/,
        "$name: for EXCH2";

    @st = map { $ng->request(GET => '/EWS/Exchange.asmx', signed_in => 'alice')->{status} } 1 .. 6;
    is_deeply \@st, [ (200) x 6 ], "$name: EWS clients get 200";
    is $farm->server('EXCH2')->hits, 1,
        "$name: EXCH2 was tried once, then skipped for owa and EWS alike";
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        "$name: the module did not eject it (one failure is not enough)";

    $ng->stop;
}

# --------------------------------------------------------------------
# 7. One-server upstreams: the only server is never ejected; its
#    failures are a farm-wide fault.
{
    my $name = 'single dead server';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('dead');
    my $ng = EH::Front::nginx($farm, servers => ['EXCH2']);
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => 'alice') } 1 .. 5;
    is join(' ', map { $_->{status} // 'none' } @r), '502 502 502 502 502',
        "$name: the client gets nginx's 502";
    like $r[0]{headers}{server}[0] // '', qr/^nginx/, "$name: nginx's own 502 page";
    is $farm->server('EXCH2')->hits, 5, "$name: every request went to it";

    is scalar(EH::Front::changes($ng, 'ejected')), 0, "$name: no ejection";
    my @ff = EH::Front::changes($ng, 'farm-fault');
    is scalar(@ff), 1, "$name: one farm-wide fault logged" or diag $ng->error_log;
    is $ff[0]{protocol}, 'owa', "$name: for owa";
    is $ff[0]{rule}, 'upstream-error', "$name: rule upstream-error";
    is $farm->name_of($ff[0]{addr}), 'EXCH2', "$name: from EXCH2";
    my @v = EH::Front::wait_verdicts($ng, 5);
    is join(' ', map { $_->{verdict} } @v), join(' ', ('upstream-error') x 5),
        "$name: verdict upstream-error";

    # the server comes back: a good signed-in answer clears the fault
    $farm->server('EXCH2')->heal;
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 200,
        "$name, healed: 200";
    my @fc = EH::Front::changes($ng, 'farm-cleared');
    is scalar(@fc), 1, "$name, healed: the farm-wide fault is cleared" or diag $ng->error_log;
    is $farm->name_of($fc[0]{addr}), 'EXCH2', "$name, healed: by EXCH2's answer";

    $ng->stop;
}

{
    my $name = 'single failing Exchange server';
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('seed');
    my $ng = EH::Front::nginx($farm, servers => ['EXCH2']);
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => "user$_") } 1 .. 5;
    is join(' ', map { $_->{status} // 'none' } @r), '302 302 302 302 302',
        "$name: the client gets the original answer";
    like $r[0]->header('Location') // '', qr{/owa/auth/errorFE\.aspx},
        "$name: the errorFE redirect, unchanged";
    is $farm->server('EXCH2')->hits, 5, "$name: every request went to it, once";

    is scalar(EH::Front::changes($ng, 'ejected')), 0, "$name: no ejection";
    my @ff = EH::Front::changes($ng, 'farm-fault');
    is scalar(@ff), 1, "$name: one farm-wide fault logged" or diag $ng->error_log;
    is $ff[0]{protocol}, 'owa', "$name: for owa";
    is $ff[0]{rule}, 'errorfe-redirect', "$name: rule errorfe-redirect";
    is $ff[0]{server}, 'EXCH2', "$name: from EXCH2";
    my @v = EH::Front::wait_verdicts($ng, 5);
    is join(' ', map { $_->{verdict} } @v), join(' ', ('failure') x 5),
        "$name: verdict failure";

    $ng->stop;
}

done_testing;
