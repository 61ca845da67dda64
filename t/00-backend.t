# Harness self-test: EH::Backend on the wire (plain HTTP), talked to with
# raw sockets and EH::Client.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use Time::HiRes qw(time);
use IO::Socket::INET;

my $b = backend(name => 'EXCH2');
is $b->fqdn, 'exch2.contoso.local', 'fqdn derived from the name';
ok $b->port > 0, 'listening on port ' . $b->port;

my %VARS = (FESERVER => 'EXCH2', FQDN => 'exch2.contoso.local', BESERVER => 'EXCH2');

sub expected {
    my ($file, %v) = @_;
    my %vars = (%VARS, %v);
    my $raw = slurp($file);
    $raw =~ s/\{\{(FESERVER|FQDN|BESERVER)\}\}/$vars{$1}/g;
    my $i = index $raw, "\r\n\r\n";
    my ($head, $body) = (substr($raw, 0, $i + 4), substr($raw, $i + 4));
    my $len = length $body;
    $head =~ s/(\r\nContent-Length:\s*)\d+/$1$len/i;
    return $head . $body;
}

sub get10 {     # HTTP/1.0 request on a raw socket, read until close
    my ($be, $path, %o) = @_;
    return raw_exchange(port => $be->port, tls => $be->tls,
        data => "GET $path HTTP/1.0\r\nHost: mail.contoso.com\r\n"
              . ($o{cookie} ? "Cookie: $o{cookie}\r\n" : '') . "\r\n");
}

subtest 'replay is byte-exact for every capture' => sub {
    my @names = EH::Capture->names;
    $b->routes(map { +{ path => "^/c/\Q$_\E\$", capture => $_ } } @names);
    for my $n (@names) {
        my $c = capture($n);
        next if $c->is_chunked && $c->body =~ /\{\{/;   # sizes change: 00-capture.t
        my $got = get10($b, "/c/$n");
        my $want = expected(EH::Capture->find($n));
        ok $got eq $want, "$n: wire bytes = capture with placeholders substituted"
            or diag "got " . length($got) . " bytes, want " . length($want);
    }
    # the stored-chunked capture: the file's bytes exactly (only header
    # placeholders change; its body has none)
    my $file = EH::Capture->find('owa-service-500-chunked');
    my $raw = slurp($file);
    my $got = get10($b, '/c/owa-service-500-chunked');
    my $fb = substr $raw, index($raw, "\r\n\r\n");
    is substr($got, index($got, "\r\n\r\n")), $fb, 'stored chunked: body framing = file bytes';
    like $got, qr/\r\nTransfer-Encoding: chunked\r\n/, 'stored chunked: still chunked';
    like $got, qr/\r\nX-FEServer: EXCH2\r\n/, 'stored chunked: header placeholder filled';
};

subtest 'identity: BESERVER override and per-route vars' => sub {
    my $b9 = backend(name => 'EXCH4', beserver => 'EXCH9',
                     routes => [ { path => '^/x', capture => 'errorfe-redirect' },
                                 { path => '^/y', capture => 'errorfe-redirect', beserver => 'EXCH7' } ]);
    my $r = http_request(GET => '/x', port => $b9->port);
    is $r->header('X-FEServer'), 'EXCH4', 'X-FEServer is the server';
    is $r->header('X-BEServer'), 'EXCH9', 'X-BEServer from beserver';
    like $r->header('Location'), qr/be=EXCH9&/, 'BESERVER in Location';
    is $r->header('X-CalculatedBETarget'), 'exch4.contoso.local', 'FQDN';
    $r = http_request(GET => '/y', port => $b9->port);
    is $r->header('X-BEServer'), 'EXCH7', 'route beserver';
    $b9->stop;
};

subtest 'chunked re-encoding on the wire' => sub {
    $b->routes({ path => '^/chunk/(\d+)', capture => 'owa-service-ok', chunked => 64 },
               { path => '^/plain', capture => 'owa-service-ok' });
    my $raw = get10($b, '/chunk/64');
    my $plain = get10($b, '/plain');
    my $want_body = substr $plain, index($plain, "\r\n\r\n") + 4;
    my $i = index $raw, "\r\n\r\n";
    my ($head, $wire) = (substr($raw, 0, $i), substr($raw, $i + 4));
    like $head, qr/\r\nTransfer-Encoding: chunked(\r\n|\z)/, 'TE chunked';
    unlike $head, qr/Content-Length/i, 'no Content-Length';
    my ($body, @sizes) = ('');
    while ($wire =~ s/\A([0-9a-f]+)\r\n//) {
        my $n = hex $1;
        push @sizes, $n;
        last unless $n;
        $body .= substr $wire, 0, $n, '';
        $wire =~ s/\A\r\n// or last;
    }
    is $wire, "\r\n", 'framing ends with 0 CRLF CRLF';
    is $body, $want_body, 'de-chunked body = original body';
    is_deeply [ @sizes[0 .. $#sizes - 2] ], [ (64) x ($#sizes - 1) ], 'chunks of 64 bytes';
    is $sizes[-1], 0, 'last chunk';
    my $r = http_request(GET => '/chunk/64', port => $b->port);
    ok $r->{chunked}, 'client sees chunked';
    is $r->{body}, $want_body, 'client de-chunks';
};

subtest 'split and trickle writes' => sub {
    $b->routes({ path => '^/split', capture => 'owa-service-ok', split => [100, 300], split_pause => 0.2 },
               { path => '^/trickle', capture => 'healthcheck', trickle => [40, 0.05] },
               { path => '^/whole', capture => 'owa-service-ok' });
    my $whole = get10($b, '/whole');
    my ($got, $reads) = raw_exchange(port => $b->port,
        data => "GET /split HTTP/1.0\r\n\r\n");
    is $got, $whole, 'split response has the same bytes';
    ok @$reads >= 3, 'arrives in at least 3 reads (' . scalar(@$reads) . ')';
    is length $reads->[0][1], 100, 'first read ends at offset 100';
    is length $reads->[1][1], 200, 'second read ends at offset 300';
    ok $reads->[1][0] - $reads->[0][0] >= 0.15, 'pause between writes';
    ok $reads->[2][0] - $reads->[1][0] >= 0.15, 'pause between writes';

    my $t0 = time;
    ($got, $reads) = raw_exchange(port => $b->port, data => "GET /trickle HTTP/1.0\r\n\r\n");
    is $got, expected(EH::Capture->find('healthcheck')), 'trickled bytes';
    my $n = int((length($got) + 39) / 40);
    ok @$reads >= $n - 1, "trickled in ~$n reads (" . scalar(@$reads) . ")";
    ok time - $t0 >= 0.05 * ($n - 1) * 0.9, 'trickle took its time';
};

subtest 'gzip and deflate' => sub {
    $b->routes({ path => '^/auto', capture => 'owa-signed-in', gzip => 'auto' },
               { path => '^/gzip', capture => 'owa-signed-in', gzip => 1, chunked => 1000 },
               { path => '^/deflate', capture => 'owa-signed-in', deflate => 1 });
    my $want = capture('owa-signed-in')->body =~ s/\{\{(\w+)\}\}/$VARS{$1}/gr;
    my $r = http_request(GET => '/auto', port => $b->port, accept_encoding => 'gzip, deflate, br');
    is $r->header('Content-Encoding'), 'gzip', 'auto: gzip when accepted';
    is $r->{body}, $want, 'auto: decoded body = original';
    ok length $r->{body_encoded} < length $want, 'auto: sent compressed';
    is $r->header('Content-Length'), length $r->{raw_body}, 'auto: Content-Length of the gzipped body';
    $r = http_request(GET => '/auto', port => $b->port);
    ok !defined $r->header('Content-Encoding'), 'auto: identity without Accept-Encoding';
    is $r->{body}, $want, 'auto: plain body';
    $r = http_request(GET => '/auto', port => $b->port, accept_encoding => 'gzip;q=0, deflate');
    ok !defined $r->header('Content-Encoding'), 'auto: gzip;q=0 refuses gzip';
    $r = http_request(GET => '/gzip', port => $b->port);
    is $r->header('Content-Encoding'), 'gzip', 'gzip => 1: always';
    ok $r->{chunked}, 'gzip + chunked';
    is $r->{body}, $want, 'gzip + chunked: decoded body = original';
    $r = http_request(GET => '/deflate', port => $b->port);
    is $r->header('Content-Encoding'), 'deflate', 'deflate';
    is $r->{body}, $want, 'deflate: decoded body = original';
};

subtest 'keep-alive, HTTP/1.0, request bodies, log' => sub {
    $b->heal;
    $b->clear_log;
    is $b->hits, 0, 'log cleared';
    my $c = EH::Client->new(port => $b->port, keepalive => 1);
    my @r = map { $c->request(GET => "/owa/?n=$_", signed_in => 'alice') } 1 .. 3;
    is_deeply [ map { $_->{status} } @r ], [200, 200, 200], 'three requests on one connection';
    ok $r[2]{reused_connection}, 'client reused the connection';
    my @log = $b->requests;
    is scalar @log, 3, 'three log entries';
    is scalar(keys %{ { map { $_->{conn} => 1 } @log } }), 1, 'same backend connection';
    is_deeply [ map { $_->{n} } @log ], [1, 2, 3], 'request numbers on the connection';
    is $log[0]{target}, '/owa/?n=1', 'path with query';
    is $log[0]{path}, '/owa/', 'path';
    is $log[0]{query}, 'n=1', 'query';
    is $log[0]{user}, 'alice', 'user from cadata';
    is $log[0]{signed_in}, 1, 'signed in';
    is $log[0]{route}, 'owa-page', 'route name';
    is $log[0]{capture}, 'owa-signed-in', 'capture';
    is $log[0]{server}, 'EXCH2', 'server';
    like $log[0]{headers}{cookie}, qr/cadataSig=/, 'request headers kept';
    ok $log[0]{cookies}{cadataTTL}, 'cookies parsed';
    $c->close;

    # change the behaviour while a keep-alive connection is open
    $c = EH::Client->new(port => $b->port, keepalive => 1);
    is $c->request(GET => '/owa/', signed_in => 'bob')->{status}, 200, 'healthy';
    $b->preset('seed');
    my $r = $c->request(GET => '/owa/', signed_in => 'bob');
    is $r->{status}, 302, 'same connection sees the new behaviour';
    ok $r->{reused_connection}, '(connection was reused)';
    $b->heal;
    $c->close;

    $b->clear_log;
    get10($b, '/owa/') for 1 .. 2;
    my @l = $b->requests;
    isnt $l[0]{conn}, $l[1]{conn}, 'HTTP/1.0: connection per request';
    is $l[0]{version}, '1.0', 'version logged';

    $b->clear_log;
    http_request(POST => '/EWS/Exchange.asmx', port => $b->port, body => "<soap>x</soap>",
                 content_type => 'text/xml');
    http_request(POST => '/EWS/Exchange.asmx', port => $b->port, body => "a" x 1000,
                 chunked_body => 300);
    @l = $b->requests(method => 'POST');
    is $l[0]{body}, '<soap>x</soap>', 'Content-Length body logged';
    is $l[1]{body}, 'a' x 1000, 'chunked request body de-chunked and logged';
    is $b->hits(path => qr{^/EWS/}), 2, 'hits with path filter';
    is $b->hits(path => '^/ews/'), 2, 'string path filter is case-insensitive';
    is $b->hits(signed_in => 1), 0, 'signed_in filter';

    my $h = http_request(HEAD => '/owa/healthcheck.htm', port => $b->port);
    is $h->{status}, 200, 'HEAD';
    is $h->{raw_body}, '', 'HEAD: no body';
};

subtest 'route matching and actions' => sub {
    $b->routes(
        { method => 'POST', path => '^/m', capture => 'owa-service-500' },
        { user => 'carol', path => '^/m', capture => 'owa-service-500-nomailbox' },
        { match_headers => { 'X-Test' => '^yes$' }, path => '^/m', status => 503 },
        { path => '^/m', capture => 'owa-service-ok', status => 299, reason => 'Fine',
          headers => { 'X-Extra' => '{{FQDN}}' }, remove_headers => ['X-FEServer'] },
        { path => '^/CASE', case_sensitive => 1, status => 201 },
        { path => '^/raw', raw => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw" },
        { path => '^/trunc', capture => 'owa-signed-in', truncate => 50 },
        { path => '^/close', close => 1 },
        { path => '^/delay', capture => 'healthcheck', delay => 0.3 },
    );
    is http_request(POST => '/m', port => $b->port)->{status}, 500, 'method match';
    is http_request(GET => '/m', port => $b->port, signed_in => 'carol')->header('X-OWA-Error'),
        'Microsoft.Exchange.Data.Storage.UserHasNoMailboxException', 'user match';
    is http_request(GET => '/m', port => $b->port, headers => { 'X-Test' => 'yes' })->{status},
        503, 'header match (synthetic status response)';
    my $r = http_request(GET => '/m', port => $b->port);
    is "$r->{status} $r->{reason}", '299 Fine', 'status override';
    is $r->header('X-Extra'), 'exch2.contoso.local', 'extra header, substituted';
    ok !defined $r->header('X-FEServer'), 'removed header';
    is http_request(GET => '/CASE', port => $b->port)->{status}, 201, 'case-sensitive match';
    is http_request(GET => '/case', port => $b->port)->{status}, 404, 'case-sensitive: no match -> 404';
    is get10($b, '/raw'), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw", 'raw bytes';
    is get10($b, '/trunc'), substr(expected(EH::Capture->find('owa-signed-in')), 0, 50),
        'truncate: first 50 bytes then close';
    is get10($b, '/close'), '', 'close: no response at all';
    $r = http_request(GET => '/close', port => $b->port);
    like $r->{error}, qr/closed without response/, 'client reports the closed connection';
    my $t0 = time;
    $r = http_request(GET => '/delay', port => $b->port);
    my $dt = time - $t0;
    is $r->{status}, 200, 'delayed response';
    ok $dt >= 0.3 && $dt < 2, sprintf 'delay 0.3 s (took %.2f)', $dt;
    my ($last) = grep { $_->{target} eq '/close' } $b->requests;
    is $last->{action}, 'close', 'log records the action';

    ok !eval { $b->routes({ pth => 'x' }); 1 }, 'unknown route key croaks';
    like $@, qr/unknown key 'pth'/, '... with the key';
    ok !eval { $b->routes({ capture => 'nope-nope' }); 1 }, 'unknown capture croaks';
    ok !eval { $b->preset('nope'); 1 }, 'unknown preset croaks';
};

subtest 'stop and restart on the same port' => sub {
    $b->heal;
    my $port = $b->port;
    $b->stop;
    ok !$b->is_running, 'stopped';
    my $r = http_request(GET => '/owa/', port => $port, timeout => 2);
    like $r->{error}, qr/connect.*failed/, 'connection refused while stopped';
    $b->start;
    is $b->port, $port, 'same port';
    is http_request(GET => '/owa/healthcheck.htm', port => $port)->{status}, 200, 'serving again';
};

subtest 'client timeout' => sub {
    $b->routes({ delay => 5, capture => 'healthcheck' });
    my $t0 = time;
    my $r = http_request(GET => '/', port => $b->port, timeout => 0.5);
    ok time - $t0 < 2, 'client gave up in time';
    is $r->{error}, 'timeout', 'error is timeout';
    ok !defined $r->{status}, 'no status';
    $b->heal;
};

done_testing;
