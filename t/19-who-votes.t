#!/usr/bin/perl

# Who may vote: answers that say nothing of the answering server's
# signed-in path never count against it.  Anonymous pages (errorFE.aspx,
# the logon) are routed, not judged, whatever cookie they carry; an errorFE
# redirect for a page that is not there (httpCode 4xx) is the request's,
# not the server's; a trial passes only on a 2xx a mailbox server took part
# in, never on the logon redirect a forged cookie gets from a broken server;
# a failure no other server confirmed counts only for a session Exchange
# is known to have signed in.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes qw(sleep);

my $farm = farm(tls => 1);

sub hits_all {
    my ($path) = @_;
    my $n = 0;
    $n += $farm->server($_)->hits(path => $path) for qw(EXCH1 EXCH2 EXCH3);
    return $n;
}

sub verdicts {
    my ($ng, $re) = @_;
    my $f = $ng->prefix . '/logs/verdict.log';
    return () unless -e $f;
    return map { (split / /)[5] } grep { /$re/ } split /\n/, slurp($f);
}

subtest 'forged cookies on the errorFE page vote for nothing' => sub {
    $farm->heal;
    $farm->clear_logs;
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;');
    $ng->start;

    # anyone can ask any server to render the error page, with any query
    # and any cookie: three made-up users, GET and POST, on every server
    my $path = '/owa/auth/errorFE.aspx?httpCode=500&be=EXCH2'
             . '&owaError=Microsoft.Exchange.Diagnostics.ExAssertException';
    my @r;
    for my $i (1 .. 9) {
        for my $m (qw(GET POST)) {
            push @r, $ng->request($m => $path,
                                  cookies => { cadata => "forged$i" });
        }
    }
    is scalar(grep { $_->{status} == 200 } @r), 18,
        'the page reaches each client as the server rendered it';
    is hits_all('^/owa/auth/errorFE'), 18, '... asked of one server each';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'no farm-wide fault';
    is_deeply [grep { $_ ne '-' && $_ ne '' } verdicts($ng, 'errorFE')], [],
        'no verdict on any of them';

    $ng->stop;
};

# What a scanner's POST gets from every server alike: a 500 from the front
# end (X-FEServer), before any mailbox server took part (no X-BEServer).
sub scanner_500 {
    my ($s) = @_;
    $farm->server($s)->prepend({ name => 'scanner', method => 'POST',
        path => '^/ecp/probe\.js', status => 500,
        headers => { 'X-FEServer' => $s, 'Content-Type' => 'text/html' },
        body => '<html><body>Server Error</body></html>' });
}

subtest 'made-up sessions have no vote: a failure no server confirms' => sub {
    $farm->heal;
    $farm->clear_logs;
    scanner_500($_) for qw(EXCH1 EXCH2 EXCH3);
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;');
    $ng->start;

    # a POST is not retried: nothing tells the request's failure from the
    # server's but who sends it.  Thirty made-up cookies, ten per server.
    my @r = map { $ng->request(POST => '/ecp/probe.js', body => 'x',
                               cookies => { cadata => "made-up$_" }) } 1 .. 30;
    is scalar(grep { $_->{status} == 500 } @r), 30, 'each gets the 500';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, 'no farm-wide fault';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => 'after' . $_) for 1 .. 9;
    is_deeply $farm->hits(path => '^/owa/$'), { EXCH1 => 3, EXCH2 => 3, EXCH3 => 3 },
        'the load stays even';
    $ng->stop;
};

subtest 'sessions Exchange signed in vote: the same failure on one server ejects it' => sub {
    $farm->heal;
    $farm->clear_logs;
    scanner_500('EXCH2');
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;');
    $ng->start;

    # each user first opens OWA (an answer from a mailbox server: proof),
    # then posts; EXCH2 alone fails the post
    for my $u (1 .. 12) {
        $ng->request(GET => '/owa/', signed_in => "real$u");
        $ng->request(POST => '/ecp/probe.js', body => 'x', signed_in => "real$u");
        last if EH::Front::changes($ng, 'ejected');
    }
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'one server ejected';
    is $ej[0]{server}, 'EXCH2', '... EXCH2';
    $ng->stop;
};

subtest 'a stale link is nobody\'s failure' => sub {
    $farm->heal;
    $farm->clear_logs;

    # OWA sends "can't find the page" through errorFE.aspx, as it sends a
    # server's failure: the same from every server
    for my $s (qw(EXCH1 EXCH2 EXCH3)) {
        $farm->server($s)->prepend({
            name => 'stale', path => '^/owa/old/', status => 302,
            headers => { Location => 'https://mail.contoso.com/owa/auth/'
                                   . 'errorFE.aspx?httpCode=404' },
            body => '' });
    }

    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;');
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/old/inbox.aspx',
                               signed_in => "stale$_") } 1 .. 9;
    is scalar(grep { $_->{status} == 302
                     && ($_->{headers}{location}[0] // '') =~ /httpCode=404/ }
              @r), 9, 'each user gets the not-found redirect';
    is hits_all('^/owa/old/'), 9, '... from the first server asked: no retry';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'no farm-wide fault';
    is_deeply [grep { $_ ne 'healthy' } verdicts($ng, '/owa/old/')], [],
        'every one healthy in $exchange_health_verdict';

    # the page itself, as a link to it or a stale bookmark gets it: the
    # errorFE page with status 404, the same from every server
    $farm->clear_logs;
    for my $s (qw(EXCH1 EXCH2 EXCH3)) {
        $farm->server($s)->prepend({ name => 'stale-page',
            path => '^/owa/gone/', capture => 'errorfe-page-en', status => 404 });
    }
    my $m0 = $ng->mark;
    @r = map { $ng->request(GET => '/owa/gone/x.aspx',
                            signed_in => "gone$_") } 1 .. 9;
    is scalar(grep { $_->{status} == 404 && $_->{body} =~ /auth_errorfe_aspx/ } @r),
        9, 'each user gets the errorFE page with its 404';
    is hits_all('^/owa/gone/'), 9, '... from the first server asked: no retry';
    is scalar(EH::Front::changes($ng, 'ejected', since => $m0)), 0,
        'no server ejected';
    is_deeply [grep { $_ ne 'healthy' } verdicts($ng, '/owa/gone/')], [],
        'the 404 page: every one healthy in $exchange_health_verdict';

    # a signed-in 500 from errorFE still counts
    $farm->server('EXCH2')->preset('seed');
    my $m = $ng->mark;
    $ng->request(GET => '/owa/', signed_in => "real$_") for 1 .. 12;
    ok wait_until(sub { EH::Front::changes($ng, 'ejected', since => $m) }),
        'the server failure (httpCode=500) still ejects EXCH2';

    $ng->stop;
};

subtest 'a forged cookie does not pass a broken server\'s trial' => sub {
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');

    # every server, the broken one too, serves the logon redirect to a
    # cookie it cannot read
    $farm->server($_)->prepend({
        name => 'forged', user => 'mallory', path => '^/owa(?:[/?]|$)',
        capture => 'owa-redirect-logon' }) for qw(EXCH1 EXCH2 EXCH3);
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=1s;',
        location => 'exchange_health_retry off;');
    $ng->start;

    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 12;
    ok wait_until(sub { EH::Front::changes($ng, 'ejected') }), 'EXCH2 ejected';
    sleep 1.2;

    # a made-up cookie is no session Exchange signed in: it never takes
    # the trial (it would hold a healed server out), nor reaches EXCH2
    my $m = $ng->mark;
    $ng->request(GET => '/owa/', signed_in => 'mallory') for 1 .. 6;
    is scalar(EH::Front::changes($ng, 'trial', since => $m)), 0,
        'the forged cookie\'s requests take no trial';
    is $farm->server('EXCH2')->hits(user => 'mallory'), 0,
        '... nor reach EXCH2';
    is scalar(EH::Front::changes($ng, 'readmitted')), 0,
        'EXCH2 not re-admitted';

    # a user Exchange signed in before is the trial, and fails it
    $m = $ng->mark;
    for (1 .. 6) {
        $ng->request(GET => '/owa/', signed_in => "u$_");
        last if EH::Front::changes($ng, 'trial-failed', since => $m);
    }
    is scalar(EH::Front::changes($ng, 'trial-failed', since => $m)), 1,
        'a real user\'s request then fails the trial';
    is scalar(EH::Front::changes($ng, 'readmitted')), 0, 'never re-admitted';

    $ng->stop;
};

subtest 'one user failing on every server: the status page says so' => sub {
    $farm->heal;
    for my $s (qw(EXCH1 EXCH2 EXCH3)) {
        $farm->server($s)->prepend({ name => 'zed', user => 'zed',
            path => '^/owa(?:[/?]|$)', capture => 'errorfe-redirect' });
    }
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;

    $ng->request(GET => '/owa/', signed_in => 'zed') for 1 .. 6;
    is $farm->total_hits(path => '^/owa/'), 12,
        'each of six requests tried on two servers';

    my ($j) = EH::Front::status_json($ng);
    is $j->{request_failing}, 1, 'JSON: requests failing for one protocol';
    is $j->{upstreams}[0]{farm}{owa}{request_failing}, JSON::PP::true(),
        '... owa';
    is_deeply [sort map { $_->{name} } grep {
                   ($_->{protocols}{owa}{requests} // 0) > 0 }
               @{ $j->{upstreams}[0]{servers} }],
        [qw(EXCH1 EXCH2 EXCH3)], 'every server shows its OWA requests';

    my $h = $ng->request(GET => '/status')->{body};
    unlike $h, qr/all well|All \d+ servers healthy/,
        'the headline is not "all well"';
    like $h, qr/requests failing on every server/, '... it says what fails';
    unlike $h, qr/No traffic yet/, 'no server shows "No traffic yet"';
    like $h, qr/Requests failing on every server for owa/,
        'the protocol\'s card';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'one user is no farm-wide fault';

    $ng->stop;
};

subtest 'a mailbox database down: its back end\'s fault, not the farm\'s' => sub {
    $farm->heal;

    # the users of one database fail through every front end, and every
    # answer names the mailbox server that hosts it
    for my $s (qw(EXCH1 EXCH2 EXCH3)) {
        for my $u (map { "db$_" } 1 .. 4) {
            $farm->server($s)->prepend({ name => "dbdown-$u", user => $u,
                path => '^/owa(?:[/?]|$)', capture => 'errorfe-redirect',
                beserver => 'MBX7' });
        }
    }
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;

    for my $round (1 .. 3) {
        $ng->request(GET => '/owa/', signed_in => "db$_") for 1 .. 4;
        $ng->request(GET => '/owa/', signed_in => "ok$_") for 1 .. 3;
    }

    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, 'no farm-wide fault';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    my @be = $ng->grep_error_log(qr/requests for owa fail on every server, all through mailbox server MBX7 \(\d+ failures in [^)]+\): that back end's fault, no server ejected: rule "errorfe-redirect"/);
    is scalar(@be), 1, 'logged once: that back end\'s fault';

    my ($j) = EH::Front::status_json($ng);
    is $j->{upstreams}[0]{farm}{owa}{backend}, 'MBX7', 'JSON: the back end named';
    is $j->{failing}, 0, '... and no front end failing';
    my $h = $ng->request(GET => '/status')->{body};
    like $h, qr{Every one went through mailbox server <b>MBX7</b>},
        'HTML: the back end named';
    like $h, qr{Get-MailboxDatabaseCopyStatus -Server MBX7},
        '... with what to check';
    my $prom = $ng->request(GET => '/status?format=prometheus')->{body};
    like $prom, qr/^exchange_health_backend_failing\{upstream="exchange",protocol="owa",backend="MBX7"\} 1$/m,
        'Prometheus: the back end named';

    $ng->stop;
};

subtest 'a mailbox server whose back end the front ends cannot reach: its fault, not the farm\'s' => sub {
    $farm->heal;
    $farm->clear_logs;

    # Its users opened OWA this morning; then MBX7's back-end site breaks
    # (a certificate binding on 444 lost): every front end answers them
    # with its own 500, naming the target it computed
    # (X-CalculatedBETarget) and no X-BEServer: MBX7 never answered.
    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    $ng->request(GET => '/owa/', signed_in => "mb$_") for 1 .. 4;

    for my $s (qw(EXCH1 EXCH2 EXCH3)) {
        for my $u (map { "mb$_" } 1 .. 4) {
            $farm->server($s)->prepend({ name => "be-down-$u", user => $u,
                path => '^/owa(?:[/?]|$)', status => 500,
                headers => { 'X-FEServer' => $s,
                             'X-CalculatedBETarget' => 'mbx7.contoso.local',
                             'Content-Type' => 'text/html' },
                body => '<html><body>Internal Server Error</body></html>' });
        }
    }

    for my $round (1 .. 3) {
        $ng->request(GET => '/owa/', signed_in => "mb$_") for 1 .. 4;
        $ng->request(GET => '/owa/', signed_in => "fine$_") for 1 .. 3;
    }

    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, 'no farm-wide fault';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';
    my @be = $ng->grep_error_log(qr/all through mailbox server mbx7 \(/i);
    is scalar(@be), 1, 'logged once: that back end\'s fault';
    my ($j) = EH::Front::status_json($ng);
    like $j->{upstreams}[0]{farm}{owa}{backend} // '', qr/^mbx7$/i,
        'JSON: the back end named';
    $ng->stop;
};

subtest 'an EWS SOAP fault is the request\'s or the user\'s' => sub {
    $farm->heal;

    # EWS throttles a user with a SOAP fault in a 500, as it answers a
    # request it cannot parse
    my $fault = '<?xml version="1.0" encoding="utf-8"?>'
        . '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        . '<s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/'
        . 'exchange/services/2006/types">a:ErrorServerBusy</faultcode>'
        . '<faultstring xml:lang="en-US">The server cannot service this '
        . 'request right now. Try again later.</faultstring><detail>'
        . '<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/'
        . 'services/2006/errors">ErrorServerBusy</e:ResponseCode>'
        . '</detail></s:Fault></s:Body></s:Envelope>';
    $farm->server('EXCH2')->prepend({ name => 'ews-busy', path => '^/EWS/',
        raw => "HTTP/1.1 500 Internal Server Error\r\n"
             . "Content-Type: text/xml; charset=utf-8\r\n"
             . "Server: Microsoft-IIS/10.0\r\nX-FEServer: EXCH2\r\n"
             . "X-BEServer: EXCH2\r\nConnection: close\r\n"
             . 'Content-Length: ' . length($fault) . "\r\n\r\n$fault" });
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my @r = map { $ng->request(GET => '/EWS/Exchange.asmx',
                               signed_in => "ews$_") } 1 .. 12;
    is scalar(grep { $_->{status} == 500 } @r), 4,
        'the fault reaches the client it was for';
    is $farm->total_hits(path => '^/EWS/'), 12, '... without a retry';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'EXCH2 not ejected';
    is_deeply [sort { $a cmp $b } grep { $_ ne 'healthy' }
               verdicts($ng, '/EWS/')],
        [('user-failure') x 4], 'user-failure in $exchange_health_verdict';

    $ng->stop;
};

subtest 'ActiveSync\'s answers for one device or user are no failure' => sub {
    $farm->heal;

    # 449 (provision again), 451 (go to another server), 503 with
    # Retry-After (throttling): IIS and Exchange answered, for a device
    my %status = (449 => 'Retry With', 451 => 'Redirect', 503 => 'Service Unavailable');
    for my $code (sort keys %status) {
        $farm->server('EXCH2')->prepend({ name => "eas-$code",
            path => '^/Microsoft-Server-ActiveSync',
            raw => "HTTP/1.1 $code $status{$code}\r\n"
                 . "Server: Microsoft-IIS/10.0\r\nX-FEServer: EXCH2\r\n"
                 . ($code == 451 ? "X-MS-Location: https://mail2.contoso.com/Microsoft-Server-ActiveSync\r\n" : '')
                 . ($code == 503 ? "Retry-After: 30\r\n" : '')
                 . "Content-Length: 0\r\nConnection: close\r\n\r\n" });
        $farm->clear_logs;

        my $ng = EH::Front::nginx($farm);
        $ng->start;
        my @r = map { $ng->request(POST => '/Microsoft-Server-ActiveSync?Cmd=Sync',
                                   body => 'x', headers => { Authorization => "Basic dev$_" }) }
                1 .. 9;
        is scalar(grep { $_->{status} == $code } @r), 3,
            "$code: reaches the device it was for";
        is $farm->total_hits(path => '^/Microsoft-Server-ActiveSync'), 9,
            "$code: no retry";
        is scalar(EH::Front::changes($ng, 'ejected')), 0, "$code: no ejection";
        $ng->stop;
        $farm->server('EXCH2')->heal;
    }
};

subtest 'a request that fails on every server, among users served well, is no farm fault' => sub {
    # One OWA call fails the same way on every server (a 500 naming the
    # server), for many users, while the same servers answer everyone's
    # pages well: the request's failure, not the farm's.  Before a good
    # signed-in answer cleared a server from the farm's failing set,
    # three such users raised a farm-wide fault, and a retry passed over
    # every server that had failed the request.
    $farm->heal;
    for my $b ($farm->servers) {
        $b->prepend({ name => 'poison', path => '^/owa/service\.svc\?action=Poison',
                      signed_in => 1, status => 500,
                      add_headers => [ [ 'X-FEServer' => $b->name ] ] });
    }
    $farm->clear_logs;
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1m;',
                              location => 'exchange_health_retry on non_idempotent;');
    $ng->start;

    for my $i (1 .. 8) {
        for my $u (1 .. 3) {
            $ng->request(GET => '/owa/', signed_in => "ok$i-$u");
        }
        my $r = $ng->request(POST => '/owa/service.svc?action=Poison',
                             signed_in => "user$i", body => '{}');
        is $r->{status}, 500, "poison $i: the client gets the server's 500";
    }
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, 'no farm-wide fault';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';

    # the pages after it spread evenly: first tries are round robin's
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "after$_") for 1 .. 30;
    is_deeply $farm->hits(path => '^/owa/$'), { EXCH1 => 10, EXCH2 => 10, EXCH3 => 10 },
        'load stays even';
    $ng->stop;
};

done_testing;
