#!/usr/bin/perl

# The helpdesk status page: HTML, JSON and Prometheus against a farm with
# one failing server; names, states, counts, the hint; escaping of what
# upstream servers send; no secrets; GET and HEAD only; only for a Host
# the server serves (DNS rebinding); one consistent picture while the
# state changes under load.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Status;
use JSON::PP ();

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');

my $ng = EH::Front::nginx($farm,
    server => 'location = /status { exchange_health_status; }');
$ng->start;

# the helpdesk's view after EXCH2 failed a few signed-in users
$ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;
$ng->request(GET => "/owa/?secretquery=QSECRET$_", signed_in => "user$_",
             headers => { Authorization => 'Basic QVVUSFNFQ1JFVA==' })
    for 1 .. 12;
$ng->request(GET => '/EWS/Exchange.asmx', signed_in => "ews$_") for 1 .. 3;

subtest 'JSON' => sub {
    my $r = $ng->request(GET => '/status?format=json');
    is $r->{status}, 200, 'answered 200';
    like $r->header('Content-Type'), qr{^application/json}, 'content type';
    is $r->header('Cache-Control'), 'no-store', 'never cached';

    my $j = JSON::PP->new->utf8->decode($r->{body});
    is $j->{failing}, 1, 'one server failing';

    my @s = @{ $j->{upstreams}[0]{servers} };
    is $s[0]{name}, 'EXCH2', 'the failing server first';
    is $s[0]{fqdn}, 'exch2.contoso.local', 'FQDN learnt from healthcheck.htm';
    is $s[0]{address}, $farm->server('EXCH2')->addr, 'address';
    is $s[0]{state}, 'failing', 'EXCH2 failing';

    my $owa = $s[0]{protocols}{owa};
    is $owa->{state}, 'ejected', 'EXCH2 ejected for owa';
    like $owa->{ejected_until}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
        'ejected until a time';
    is $owa->{failures}, 3, 'three failures';
    is $owa->{rescued}, 3, 'three requests rescued by retry';
    is $owa->{ejections}, 1, 'one ejection';
    is $owa->{last_failure}{rule}, 'errorfe-redirect', 'last failure: rule';
    is $owa->{last_failure}{method}, 'GET', '... method';
    is $owa->{last_failure}{uri}, '/owa/', '... path, without the query';
    is $owa->{last_failure}{status}, 302, '... status';
    is $owa->{last_failure}{error},
        'Microsoft.Exchange.Diagnostics.ExAssertException', '... X-OWA-Error';
    like $owa->{hint},
        qr/Get-ExchangeCertificate \(Get-AuthConfig\)\.CurrentCertificateThumbprint/,
        'the Auth certificate hint';
    is $s[0]{protocols}{ews}{state}, 'healthy', 'EXCH2 healthy for EWS';

    is_deeply [ map { $_->{protocols}{owa}{state} } @s[1, 2] ],
        [qw(healthy healthy)], 'EXCH1 and EXCH3 healthy';
    is_deeply [ map { $_->{protocols}{owa}{failures} } @s[1, 2] ], [0, 0],
        '... no failures';

    $r = $ng->request(GET => '/status',
                      headers => { Accept => 'application/json' });
    like $r->header('Content-Type'), qr{^application/json},
        'Accept: application/json gives JSON';
};

subtest 'HTML' => sub {
    my $r = $ng->request(GET => '/status');
    is $r->{status}, 200, 'answered 200';
    like $r->header('Content-Type'), qr{^text/html}, 'HTML by default';

    my $h = $r->{body};
    like $h, qr{<title>Exchange health: 1 server failing</title>}, 'title';
    like $h, qr{<meta http-equiv="refresh"}, 'refreshes itself';
    unlike $h, qr{<script|src=|href="http}i, 'no script, nothing external';
    ok index($h, '<h3>EXCH2') < index($h, '<h3>EXCH1'), 'the failing server first';
    like $h, qr{EXCH2.*?badge bad">ejected</span> until \d\d:\d\d \(in \d+ s\)}s,
        'EXCH2 ejected, until when';
    like $h, qr{since <time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC(?:[+-]\d\d:\d\d)?</time> \(\d+ s\)},
        'since when, with the date and time zone, and how long';
    like $h, qr{rule <code>errorfe-redirect</code> matched <code>GET /owa/</code>, status 302, error <code>Microsoft\.Exchange\.Diagnostics\.ExAssertException</code>},
        'why: rule, request, status, error';
    like $h, qr{What to check:.*Get-ExchangeCertificate}s, 'what to check';
    like $h, qr{exch2\.contoso\.local}, 'the FQDN';
};

subtest 'Prometheus' => sub {
    my $r = $ng->request(GET => '/status?format=prometheus');
    is $r->{status}, 200, 'answered 200';
    like $r->header('Content-Type'), qr{^text/plain; version=0\.0\.4},
        'exposition format content type';

    my $m = EH::Status::parse_prometheus($r->{body});
    ok !$m->{error}, 'parses as the exposition format' or diag $m->{error};
    my $addr = $farm->server('EXCH2')->addr;
    is $m->{samples}{qq(exchange_health_server_up{upstream="exchange",server="$addr",name="EXCH2",protocol="owa"})},
        0, 'EXCH2 down for owa';
    is $m->{samples}{qq(exchange_health_failures_total{upstream="exchange",server="$addr",name="EXCH2",protocol="owa"})},
        3, 'its failures';
    is $m->{samples}{qq(exchange_health_server_up{upstream="exchange",server="$addr",name="EXCH2",protocol="ews"})},
        1, 'up for ews';

    # a Unix time is a _timestamp_seconds, as the certificate's expiry
    my $since = $m->{samples}{qq(exchange_health_server_state_since_timestamp_seconds{upstream="exchange",server="$addr",name="EXCH2",protocol="owa"})};
    cmp_ok abs(($since // 0) - time), '<', 600,
        'when EXCH2 changed state for owa: a Unix time of the last minutes';
    unlike $r->{body}, qr/_since_seconds\b/, 'no _since_seconds left';

  SKIP: {
        skip 'promtool not installed', 1 unless EH::Status::promtool();
        my ($ok, $out) = EH::Status::promtool_check($r->{body});
        ok $ok, 'promtool check metrics accepts it' or diag $out;
    }
};

subtest 'Prometheus: a server Exchange has not named yet' => sub {
    # a server that never answered: its probes fail, nothing names it
    my $dead = EH::Util::free_port();
    my $ng = EH::Front::nginx($farm, before => "server 127.0.0.1:$dead;",
        upstream => 'exchange_health_probe interval=1s timeout=1s '
                  . 'protocols=owa fails=1;',
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    my $series = qr/^exchange_health_server_up\{[^}]*server="127\.0\.0\.1:$dead"[^}]*\} /m;
    my $p = '';
    ok wait_until(sub {
           $p = $ng->request(GET => '/status?format=prometheus')->{body};
           $p =~ $series }, timeout => 10),
        'the unanswering server is in the scrape';
    my ($line) = $p =~ /^(exchange_health_server_up\{[^}]*server="127\.0\.0\.1:$dead"[^}]*\} \d+)$/m;
    like $line, qr/name="127\.0\.0\.1:$dead"/,
        'named after its address' or diag $line;
    is scalar(() = $p =~ /name=""/g), 0, 'no series with name=""';
    $ng->stop;

    # configured by a host name: that name, as the page shows it
    $ng = EH::Front::nginx($farm, before => "server localhost:$dead;",
        upstream => 'exchange_health_probe interval=1s timeout=1s '
                  . 'protocols=owa fails=1;',
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    ok wait_until(sub {
           $p = $ng->request(GET => '/status?format=prometheus')->{body};
           $p =~ /^exchange_health_server_up\{[^}]*name="localhost"/m },
           timeout => 10),
        'a server configured as localhost:port is name="localhost"'
        or diag join "\n", grep { /server_up/ } split /\n/, $p;
    $ng->stop;
};

subtest 'no cookies, credentials or query strings' => sub {
    for my $f ('', '?format=json', '?format=prometheus') {
        my $body = $ng->request(GET => "/status$f")->{body};
        unlike $body, qr/QSECRET|cadata|QVVUSFNFQ1JFVA|AUTHSECRET/,
            "nothing secret in " . ($f || 'HTML');
    }
};

subtest 'GET and HEAD only' => sub {
    is $ng->request(POST => '/status', body => 'x')->{status}, 405, 'POST 405';
    is $ng->request(DELETE => '/status')->{status}, 405, 'DELETE 405';
    my $r = $ng->request(HEAD => '/status');
    is $r->{status}, 200, 'HEAD 200';
    is length($r->{raw_body} // ''), 0, 'HEAD has no body';
};

# DNS rebinding: a page of attacker.example, its name now resolving to the
# load balancer, reads the status page through a helpdesk browser inside
# the allow list; the Host it sends is attacker.example.  The page is
# served only for a Host the server block serves (the admin API's check,
# t/65-admin-hostile.t): its server_name (mail.contoso.com here), an
# address, localhost.
subtest 'only for a Host the server serves (DNS rebinding)' => sub {
    my $port = $ng->port;
    for my $f ('', '?format=json', '?format=prometheus') {
        my $what = $f || 'HTML';
        my $r = $ng->request(GET => "/status$f", host => 'attacker.example');
        is $r->{status}, 403, "Host attacker.example, $what: refused (403)";
        like $r->{body}, qr/the Host is not a name of this server/, '... says why';
        unlike $r->{body}, qr/EXCH|exchange_health_|owa/, '... and nothing of the farm';
    }
    my $r = $ng->request(HEAD => '/status', host => "attacker.example:$port");
    is $r->{status}, 403, 'HEAD with a port: refused';
    $r = $ng->request(GET => '/status', no_host => 1, http_version => '1.0');
    is $r->{status}, 403, 'HTTP/1.0 without a Host: refused';
    for my $h ('evilmail.contoso.com', 'mail.contoso.com.attacker.example',
               'localhost.attacker.example', '127.0.0.1.attacker.example', '1.2.3') {
        is $ng->request(GET => '/status?format=prometheus', host => $h)->{status}, 403,
            "Host $h: refused";
    }
    like $ng->error_log, qr/\[warn\].*exchange_health: status page refused: the Host is not a name of this server \(Host "attacker\.example"\)/,
        'a refusal is logged at warn, with the Host';

    for my $h ('mail.contoso.com', "MAIL.Contoso.com.:$port", "127.0.0.1:$port",
               '192.0.2.7', "[::1]:$port", '[2001:db8::5]', 'localhost', "localhost:$port") {
        my $r = $ng->request(GET => '/status?format=json', host => $h);
        is $r->{status}, 200, "Host $h: served";
    }
    # what the harness, Prometheus and the screenshots send
    is $ng->request(GET => '/status?format=prometheus')->{status}, 200,
        'the default Host (mail.contoso.com): served';
};

$ng->stop;

# A server block with no name of its own, or "server_name _" (the
# catch-all of nginx's examples): the page is served for an address or
# localhost only, never for a name; "_" is not taken as one.
subtest 'server_name _ or none: an address or localhost only' => sub {
    my $n = EH::Front::nginx($farm, server_name => '',
        server => 'location = /status { exchange_health_status; }',
        http => <<'CONF');
server {
    listen 127.0.0.1:{{PORT_CATCHALL}};
    server_name _;
    location = /status { exchange_health_status; }
}
CONF
    $n->start;
    for my $which ('no server_name', 'server_name _') {
        my @port = $which eq 'no server_name' ? () : (port => 'CATCHALL');
        my $p = $n->port(@port ? 'CATCHALL' : ());
        for my $h ('mail.contoso.com', 'attacker.example', '_') {
            is $n->request(GET => '/status?format=json', host => $h, @port)->{status},
                403, "$which: Host $h refused";
        }
        for my $h ("127.0.0.1:$p", 'localhost') {
            is $n->request(GET => '/status?format=json', host => $h, @port)->{status},
                200, "$which: Host $h served";
        }
    }
    $n->stop;
};

subtest 'hostile X-FEServer values are escaped' => sub {
    my $evil = qq{<script>alert("x")</script>&'\\\x01\x7f\xff"};
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('seed');
    # raw bytes: the route table would carry \xff as UTF-8
    my $raw = capture('errorfe-redirect')->bytes(
        vars => { FESERVER => 'EXCH2', FQDN => 'exch2.contoso.local',
                  BESERVER => 'EXCH2' },
        headers => { 'X-FEServer' => $evil });
    $farm->server('EXCH2')->prepend({ path => '^/owa/', signed_in => 1,
                                      raw => $raw });

    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    $ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 12;

    my $h = $ng->request(GET => '/status')->{body};
    unlike $h, qr{<script>}, 'HTML: no markup from the server';
    like $h, qr{&lt;script&gt;alert\(&quot;x&quot;\)&lt;/script&gt;&amp;&#39;},
        'HTML: escaped';
    like $h, qr{<p class="users">[^<]*&lt;script&gt;alert}, 'HTML: escaped in the line of what users see';
    my $svg = join '', $h =~ m{(<svg class="tl".*?</svg>)}sg;
    ok length $svg, 'HTML: the timelines are drawn';
    unlike $svg, qr{script|alert|EXCH}, 'SVG: no name a server sent is drawn in a timeline';

    my $jr = $ng->request(GET => '/status?format=json')->{body};
    my $j = eval { JSON::PP->new->utf8->decode($jr) };
    ok $j, 'JSON still parses' or diag $@;
    my ($s) = grep { $_->{address} eq $farm->server('EXCH2')->addr }
              @{ $j->{upstreams}[0]{servers} };
    is $s->{name}, qq{<script>alert("x")</script>&'\\??\x{fffd}"},
        'JSON: the name, control bytes and invalid UTF-8 replaced';

    my $p = $ng->request(GET => '/status?format=prometheus')->{body};
    my $m = EH::Status::parse_prometheus($p);
    ok !$m->{error}, 'Prometheus still parses' or diag $m->{error};
  SKIP: {
        skip 'promtool not installed', 1 unless EH::Status::promtool();
        my ($ok, $out) = EH::Status::promtool_check($p);
        ok $ok, 'promtool accepts it' or diag $out;
    }

    $ng->stop;
};

subtest 'correct while the state changes under load' => sub {
    $farm->heal;
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm, worker_processes => 2,
        upstream => 'exchange_health_eject time=1s;',
        server => 'location = /status { exchange_health_status; }');
    $ng->start;

    # a flapping EXCH2 under steady signed-in load from two processes
    my @load;
    for my $k (1 .. 2) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $end = time + 6;
            my $i = 0;
            while (time < $end) {
                $ng->request(GET => '/owa/', signed_in => "load$k-" . $i++,
                             timeout => 5);
            }
            POSIX::_exit(0);
        }
        push @load, $pid;
    }

    my ($pages, $bad, %last) = (0, 0);
    my $end = time + 5;
    my $broken = 0;

    while (time < $end) {
        $broken = !$broken;
        $farm->server('EXCH2')->preset($broken ? 'seed' : 'healthy');

        for (1 .. 5) {
            my $r = $ng->request(GET => '/status?format=json');
            my $j = eval { JSON::PP->new->utf8->decode($r->{body}) };
            $pages++;
            if (!$j) { $bad++; diag "unparsable page: $@"; next }

            for my $s (@{ $j->{upstreams}[0]{servers} }) {
                my $o = $s->{protocols}{owa} or next;
                for my $c (qw(requests failures rescued ejections)) {
                    my $k = "$s->{address} $c";
                    if (defined $last{$k} && $o->{$c} < $last{$k}) {
                        $bad++;
                        diag "$k went down: $last{$k} -> $o->{$c}";
                    }
                    $last{$k} = $o->{$c};
                }
                if ($o->{state} eq 'ejected' && $o->{ejections} < 1) {
                    $bad++;
                    diag "$s->{name} ejected with no ejection counted";
                }
            }
        }
    }

    waitpid $_, 0 for @load;

    cmp_ok $pages, '>=', 20, "$pages status pages fetched under load";
    is $bad, 0, 'every page parsed and told a consistent story';
    ok scalar(EH::Front::changes($ng, 'ejected')) >= 1,
        'EXCH2 was ejected at least once meanwhile';

    $ng->stop;
};

done_testing;
