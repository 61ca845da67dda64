# Harness self-test: EH::Client request building and response parsing.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

subtest 'signed-in cookies' => sub {
    my %a = EH::Client::signed_in_cookies('alice');
    my %b = EH::Client::signed_in_cookies('bob');
    is_deeply [ sort keys %a ], [qw(cadata cadataIV cadataKey cadataSig cadataTTL)], 'the five cadata cookies';
    isnt $a{cadata}, $b{cadata}, 'per-user cadata';
    isnt $a{cadataKey}, $b{cadataKey}, 'per-user cadataKey';
    is_deeply { EH::Client::signed_in_cookies('alice') }, \%a, 'stable values';
    is EH::Client::user_from_cadata($a{cadata}), 'alice', 'user back from cadata';
    is EH::Client::user_from_cadata('1abc='), undef, 'foreign cadata: no user';
};

subtest 'request building' => sub {
    my $req = EH::Client::build_request(POST => '/owa/service.svc?action=X',
        signed_in => 'alice', cookies => { ClientId => 'ABC' },
        headers => [ [ 'X-OWA-CANARY', 'c1' ], [ 'X-Multi', 1 ], [ 'X-Multi', 2 ] ],
        body => '{}', content_type => 'application/json', accept_encoding => 'gzip');
    like $req, qr{\APOST /owa/service\.svc\?action=X HTTP/1\.1\r\n}, 'request line';
    like $req, qr{\r\nHost: mail\.contoso\.com\r\n}, 'default Host';
    like $req, qr{\r\nCookie: cadata=1[^;]+; cadataKey=[^;]+; cadataIV=[^;]+; cadataSig=[^;]+; cadataTTL=[^;]+; ClientId=ABC\r\n},
        'cookies';
    like $req, qr{\r\nX-Multi: 1\r\nX-Multi: 2\r\n}, 'repeated headers';
    like $req, qr{\r\nContent-Length: 2\r\n}, 'Content-Length';
    like $req, qr{\r\nAccept-Encoding: gzip\r\n}, 'Accept-Encoding';
    like $req, qr{\r\nConnection: close\r\n\r\n\{\}\z}, 'Connection: close, body';
    my $r10 = EH::Client::build_request(GET => '/', http_version => '1.0', host => 'x');
    is $r10, "GET / HTTP/1.0\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (EH test client)\r\n\r\n", 'HTTP/1.0';
};

my $b = backend(name => 'EXCH1');

subtest 'response parsing' => sub {
    my $r = http_request(GET => '/owa/', port => $b->port, signed_in => 'alice');
    is $r->{status}, 200, 'status';
    is $r->{reason}, 'OK', 'reason';
    is $r->{version}, '1.1', 'version';
    my @sc = $r->header_all('Set-Cookie');
    ok @sc >= 2, 'repeated Set-Cookie headers kept (' . scalar(@sc) . ')';
    is_deeply $r->{headers}{'set-cookie'}, \@sc, 'headers hash: lower-case name => [values]';
    is $r->header('x-feserver'), 'EXCH1', 'header() is case-insensitive';
    is length $r->{body}, $r->header('Content-Length'), 'body by Content-Length';
    like $r->{raw}, qr/\AHTTP\/1\.1 200 OK\r\n/, 'raw bytes kept';
    is $r->{raw}, $r->{raw_head} . $r->{raw_body}, 'raw = head + body';
    is $r->summary, '200 OK (X-FEServer: EXCH1)', 'summary';

    $b->routes({ path => '^/cont', capture => 'healthcheck' });
    $r = http_request(POST => '/cont', port => $b->port, body => 'x' x 10,
                      headers => { Expect => '100-continue' });
    is $r->{status}, 200, 'final status after 100 Continue';
    is $r->{interim}[0]{status}, 100, 'interim 100 recorded';

    my $raw = http_request(undef, undef, port => $b->port,
        raw => "GET /cont HTTP/1.0\r\n\r\n");
    is $raw->{status}, 200, 'raw request';
    $b->heal;
};

done_testing;
