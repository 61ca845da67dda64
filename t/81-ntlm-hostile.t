#!/usr/bin/perl

# Connection-bound sign-in (NTLM, Negotiate) against clients that do not
# play by the rules, and against Outlook left idle: each finding of the
# security audit of the binding layer and of "who may vote" (docs/
# hardening.md, "Bound connections and voters"), with plain nginx beside
# the module where the comparison says something.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Ntlm;
use EH::Client;
use POSIX ();

my $farm = farm(tls => 1);

sub ntlm_routes {
    for my $b ($farm->servers) {
        $b->heal;
        $b->prepend({ name => 'mapi', path => '^/mapi/', ntlm => 1 });
        $b->prepend({ name => 'mapi-slow', path => '^/mapi/slow', ntlm => 1,
                      delay => 1 });
    }
}

my $re = join '|', map { $_->port } $farm->servers;
my %port_of = map { $_->port => $_->name } $farm->servers;

# established connections to the back ends, per server name
sub upstream_conns {
    my %n;
    for (split /\n/, `ss -Htn state established 2>/dev/null`) {
        next unless /\s127\.0\.0\.1:($re)\s+127\.0\.0\.1:\d+/;
        $n{ $port_of{$1} }++;
    }
    return \%n;
}

sub total { my $n = 0; $n += $_ for values %{ $_[0] }; $n }

ntlm_routes();

# --------------------------------------------------------------------
# 1. An idle bound connection keeps no proxy_read_timeout running: a
#    client that waits longer than it between two requests is answered
#    as usual, and nobody's server is counted failing.  Before: the
#    timer fired while idle, the next request failed at once as
#    "upstream timed out", and nine such clients ejected every server.
{
    my $ng = EH::Front::nginx($farm,
        upstream => "keepalive 16;\nexchange_health_eject time=60s;",
        location => 'proxy_read_timeout 2s;');
    $ng->start;

    # nine anonymous clients: a type-1, a wait, a type-1 again
    my @c = map { EH::Client->new(port => $ng->port, keepalive => 1) } 1 .. 9;
    my @first = map { $_->request(GET => '/mapi/emsmdb/', headers =>
        [ [ Authorization => 'NTLM ' . EH::Ntlm::type1() ] ])->{status} } @c;
    is scalar(grep { $_ == 401 } @first), 9, 'nine challenges';
    sleep 3;
    my @second = map { $_->request(GET => '/mapi/emsmdb/', headers =>
        [ [ Authorization => 'NTLM ' . EH::Ntlm::type1() ] ])->{status} // 0 } @c;
    is scalar(grep { $_ == 401 } @second), 9,
        'after idling past proxy_read_timeout: a challenge again, no 504'
        or diag "statuses: @second";
    $_->close for @c;

    # fifty Outlook clients signed in, idle past the read timeout
    my @o = map { EH::Ntlm::outlook(port => $ng->port, user => "idle$_",
                                    requests => 1) } 1 .. 50;
    is scalar(grep { $_->{signed_in} } @o), 50, 'fifty Outlook clients signed in';
    sleep 3;
    my ($ok, @bad) = (0);
    for my $i (0 .. $#o) {
        my ($st, $r) = EH::Ntlm::again($o[$i]{client}, user => "idle$i");
        if (($r->{status} // 0) == 200 && !grep { $_ != 200 && $_ != 401 } @$st) {
            $ok++;
        }
        else {
            push @bad, "@$st";
        }
    }
    is $ok, 50, 'after idling past the read timeout all fifty are answered'
        or diag "failed: @bad[0 .. ($#bad < 4 ? $#bad : 4)]";
    my @fail = grep { $_->{uri} =~ m{^/mapi/} && $_->{verdict} =~ /fail|error/ }
               EH::Front::verdicts($ng);
    is scalar(@fail), 0, 'no request judged failing';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, 'no farm-wide fault';
    $_->{client}->close for @o;
    $ng->stop;
}

# --------------------------------------------------------------------
# 2. Anonymous clients pin no upstream connection beyond what plain
#    nginx with the same keepalive keeps.  Before: a bare "NTLM" to the
#    logon page bound a connection per client, 200 for 200 clients.
{
    my %held;
    for my $kind (qw(plain module)) {
        my $ng = EH::Front::nginx($farm, upstream => 'keepalive 16;',
            ($kind eq 'plain' ? (balancer => '') : ()));
        $ng->start;
        my @c = map { EH::Client->new(port => $ng->port, keepalive => 1) } 1 .. 200;
        my $ok = grep { ($_->request(GET => '/owa/auth/logon.aspx', headers =>
            [ [ Authorization => 'NTLM' ] ])->{status} // 0) == 200 } @c;
        is $ok, 200, "$kind: 200 logon pages with a bare NTLM header";
        $held{$kind} = total(upstream_conns());
        $_->close for @c;
        $ng->stop;
    }
    diag "upstream connections held: plain nginx $held{plain}, module $held{module}";
    ok $held{module} <= $held{plain},
        'the module holds no more upstream connections than plain nginx';
    ok $held{module} <= 16, '... at most keepalive\'s 16';
}

# half-done handshakes: bounded in number per client address, then in time
{
    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 16;');
    $ng->start;
    my @c = map { EH::Client->new(port => $ng->port, keepalive => 1) } 1 .. 40;
    my $ch = grep { ($_->request(GET => '/mapi/emsmdb/', headers =>
        [ [ Authorization => 'NTLM ' . EH::Ntlm::type1() ] ])->{status} // 0) == 401 } @c;
    is $ch, 40, 'forty type-1 messages from one address, forty challenges';
    my $held = total(upstream_conns());
    ok $held <= 32, "at most 32 half-done handshakes held per address ($held)";
    like $ng->error_log, qr/too many handshakes half done/, 'the error log says why';
    my $left;
    wait_until(sub { ($left = total(upstream_conns())) == 0 }, timeout => 15);
    is $left, 0, 'unanswered challenges let their connections go within 10 s';
    $_->close for @c;
    $ng->stop;
}

# max_conns holds with connections bound to clients
{
    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 16;',
        params => { map { $_ => 'max_conns=5' } $farm->names });
    $ng->start;
    my @o = map { EH::Ntlm::outlook(port => $ng->port, user => "m$_",
                                    requests => 1) } 1 .. 30;
    my $in = grep { $_->{signed_in} } @o;
    my $n = upstream_conns();
    diag 'connections per server: ' . join ', ', map { "$_=$n->{$_}" } sort keys %$n;
    ok !(grep { $_ > 5 } values %$n), 'max_conns=5: no server holds more than 5';
    is $in, 15, 'fifteen clients signed in, the others were refused';
    $_->{client}->close for @o;
    $ng->stop;
}

# --------------------------------------------------------------------
# 3. Made-up cookies become neither voters nor trial passers through an
#    answer anyone gets: Autodiscover's JSON (anonymous, proxied to a
#    mailbox server, so it carries X-CalculatedBETarget and X-BEServer).
sub autodiscover_json {
    for my $b ($farm->servers) {
        my $n = $b->name;
        $b->prepend({ name => 'autodiscover-json',
            path => '^/autodiscover/autodiscover\.json', status => 200,
            headers => { 'Content-Type' => 'application/json; charset=utf-8',
                         'X-CalculatedBETarget' => lc("$n.contoso.local"),
                         'X-BEServer' => $n, 'X-FEServer' => $n },
            body => '{"Protocol":"ActiveSync","Url":"https://mail.contoso.com/'
                  . 'Microsoft-Server-ActiveSync"}' });
    }
}

sub scanner_500 {
    my ($s) = @_;
    $farm->server($s)->prepend({ name => 'scanner', method => 'POST',
        path => '^/ecp/probe\.js', status => 500,
        headers => { 'X-FEServer' => $s, 'Content-Type' => 'text/html' },
        body => '<html><body>Server Error</body></html>' });
}

{
    $farm->heal;
    autodiscover_json();
    scanner_500($_) for qw(EXCH1 EXCH2);
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;');
    $ng->start;
    for my $i (1 .. 24) {
        my $ck = { cadata => "made-up$i" };
        $ng->request(GET => '/autodiscover/autodiscover.json?Email=x%40contoso.com'
                          . '&Protocol=ActiveSync', cookies => $ck);
        $ng->request(POST => '/ecp/probe.js', body => 'x', cookies => $ck);
    }
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        'made-up cookies that got Autodiscover\'s JSON eject nothing';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, '... and raise no farm-wide fault';
    $ng->stop;
}

{
    $farm->heal;
    autodiscover_json();
    $farm->server('EXCH2')->preset('seed');
    autodiscover_json();
    my $ng = EH::Front::nginx($farm,
        balancer => 'exchange_health zone=exchange scope=server;',
        upstream => 'exchange_health_eject time=1s;');
    $ng->start;
    for (1 .. 12) {
        last if EH::Front::changes($ng, 'ejected');
        $ng->request(GET => '/owa/', signed_in => "owa$_");
    }
    is scalar(EH::Front::changes($ng, 'ejected')), 1, 'EXCH2 ejected for broken OWA';
    sleep 1.2;
    $ng->request(GET => '/autodiscover/autodiscover.json?Email=x%40contoso.com'
                      . '&Protocol=ActiveSync', cookies => { cadata => "made-up-$_" })
        for 1 .. 9;
    is scalar(EH::Front::changes($ng, 'readmitted')), 0,
        'no made-up cookie re-admits it through Autodiscover\'s JSON';
    $ng->stop;
}

# --------------------------------------------------------------------
# 4. What the client sent cannot forge a line of the error log: a %0A
#    in an HTTP/2 path, which nginx decodes into the URI.
SKIP: {
    skip 'curl with HTTP/2 is not installed', 2
        unless `curl --version 2>/dev/null` =~ /HTTP2/;
    ntlm_routes();
    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 16;',
        http => "server {\n    listen 127.0.0.1:{{PORT_H2}} http2;\n"
              . "    location / {\n        proxy_pass https://exchange;\n"
              . "        proxy_http_version 1.1;\n"
              . "        proxy_set_header Connection \"\";\n    }\n}\n");
    $ng->start;
    my $forged = '%0A2026/01/01%2000:00:00%20[warn]%201%231:%20exchange_health:'
               . '%20upstream%20%22exchange%22%20server%20FORGED%20ejected';
    my $url = 'http://127.0.0.1:' . $ng->port('H2') . "/mapi/x$forged";
    my $auth = 'Authorization: NTLM ' . EH::Ntlm::type1();
    my $code = `curl -g -s -o /dev/null --http2-prior-knowledge -H '$auth' -w '%{http_code}' '$url'`;
    is $code, '401', 'HTTP/2 with NTLM: answered by the server';
    my @forged = grep { /^\S+ \S+ \[warn\].*FORGED/ } split /\n/, $ng->error_log;
    is scalar(@forged), 0, 'no line of the error log starts with what the client sent'
        or diag $forged[0];
    $ng->stop;
}

# --------------------------------------------------------------------
# 5. A bound server drained while it answers: that answer says
#    "Connection: close", the client's next request, on a new
#    connection, signs in elsewhere without a reset.
{
    ntlm_routes();
    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 16;',
        server => 'location = /admin { exchange_health_status admin=on; }');
    $ng->start;
    my $o = EH::Ntlm::outlook(port => $ng->port, user => 'carol');
    ok $o->{signed_in}, 'carol signed in';
    my ($on) = $o->{bodies}[-1] =~ /on (EXCH\d)/;

    my $pid = fork // die "fork: $!";
    if (!$pid) {
        select undef, undef, undef, 0.4;
        $ng->request(POST => "/admin?action=drain&server=$on&protocol=mapi",
                     body => '', headers => { 'X-Exchange-Health-Admin' => 1 });
        POSIX::_exit(0);
    }
    my $r = $o->{client}->request(GET => '/mapi/slow');
    waitpid $pid, 0;
    is $r->{status}, 200, 'the answer in flight is delivered';
    like join(',', @{ $r->{headers}{connection} || [] }), qr/close/i,
        '... with Connection: close';
    my ($st, $r2) = EH::Ntlm::again($o->{client}, user => 'carol');
    is $r2->{status}, 200, "the next request signs in again (@$st)";
    unlike $r2->{body}, qr/on $on/, "... not on the drained $on";
    $ng->stop;
}

# --------------------------------------------------------------------
# 6. A made-up type 1 does not hold a healed server's trial.  A trial
#    that meets a challenge lets the trial go at once; the answer to the
#    challenge, on the connection kept for it, claims the trial anew.
#    Before: the challenge kept the trial pending for 30 s for an answer
#    that never came, and a made-up type 1 every half minute kept a
#    healed server out.  A type 1's trial is not logged: any client can
#    start one.
{
    ntlm_routes();
    my $ng = EH::Front::nginx($farm,
        upstream => "keepalive 16;\nexchange_health_eject time=2s;");
    $ng->start;

    my @c = map { EH::Ntlm::outlook(port => $ng->port, user => "NTLM$_",
                                    requests => 1) } 1 .. 12;
    $farm->server('EXCH2')->prepend({ name => 'mapi-500', path => '^/mapi/',
        ntlm => 1, status => 500, add_headers => [ [ 'X-FEServer' => 'EXCH2' ] ] });
    ROUND: for (1 .. 3) {
        for my $i (0 .. $#c) {
            EH::Ntlm::again($c[$i]{client}, user => "NTLM$i");
            last ROUND if EH::Front::changes($ng, 'ejected');
        }
    }
    $_->{client}->close for @c;
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'made-up type 1s: EXCH2 out by its bound failures';

    # healed, and its time up: made-up type 1s, each on a connection of
    # its own and never answered, until one is EXCH2's trial
    ntlm_routes();
    select undef, undef, undef, 2.3;
    my @held;
    my $type1 = sub {
        my $a = EH::Client->new(port => $ng->port, keepalive => 1);
        my $r = $a->request(GET => '/mapi/emsmdb/', headers =>
            [ [ Authorization => 'NTLM ' . EH::Ntlm::type1() ] ]);
        push @held, $a;
        return $r->{status} // 0;
    };
    my $ex2 = $farm->server('EXCH2');
    $ex2->clear_log;
    for (1 .. 12) {
        $type1->();
        last if $ex2->hits(path => qr{^/mapi/});
    }
    ok $ex2->hits(path => qr{^/mapi/}) >= 1,
        'a made-up type 1 reached EXCH2, as its trial';
    is scalar(EH::Front::changes($ng, 'trial')), 0,
        '... which the error log does not call a trial (any client can ask)';

    # users sign in, a made-up type 1 before each: a user's sign-in is
    # the trial that brings EXCH2 back
    for my $i (1 .. 10) {
        last if EH::Front::changes($ng, 'readmitted');
        $type1->();
        my $o = EH::Ntlm::outlook(port => $ng->port, user => "late$i",
                                  requests => 1);
        $o->{client}->close;
    }
    is scalar(EH::Front::changes($ng, 'readmitted')), 1,
        'EXCH2 back through a user\'s sign-in while made-up type 1s come'
        or diag join "\n", grep { /exchange_health/ } split /\n/, $ng->error_log;
    my @tr = EH::Front::changes($ng, 'trial');
    ok @tr >= 1 && !grep({ $_->{addr} ne $ex2->addr } @tr),
        'the user\'s type 3 on trial, on EXCH2 only (' . scalar(@tr) . ')';
    $_->close for @held;
    $ng->stop;
}

done_testing;
