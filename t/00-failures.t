# Harness self-test: simulated failures as nginx sees them (close, delay,
# truncate, a stopped server) and re-framed responses through nginx.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use Time::HiRes qw(time);

my $farm = farm(n => 1);
my $b = $farm->server('EXCH1');

my $ng = nginx(http => $farm->upstream_block('exchange', extra => 'keepalive 4;') . q{
    server {
        listen 127.0.0.1:{{PORT}};
        proxy_next_upstream off;
        proxy_read_timeout 1s;
        location / {
            proxy_pass http://exchange;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
});
$ng->start;

is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 200, 'healthy through nginx';

subtest 'close => 1 gives 502' => sub {
    $b->prepend({ path => '^/owa/$', close => 1 });
    $b->clear_log;
    my $r = $ng->request(GET => '/owa/', signed_in => 'alice');
    is $r->{status}, 502, 'nginx answers 502';
    is $b->hits, 1, 'the backend saw the request once (no retry)';
    is $b->last_request->{action}, 'close', 'logged as close';
    ok scalar($ng->wait_for_error_log(qr/upstream prematurely closed/)), 'nginx logged why';
    $b->heal;
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 200, 'healed';
};

subtest 'delay' => sub {
    $b->prepend({ path => '^/owa/$', delay => 0.4, capture => 'owa-signed-in' });
    my $t0 = time;
    my $r = $ng->request(GET => '/owa/', signed_in => 'alice');
    my $dt = time - $t0;
    is $r->{status}, 200, 'delayed answer';
    ok $dt >= 0.4, sprintf 'took at least the delay (%.2f s)', $dt;
    $b->routes({ delay => 3, capture => 'healthcheck' });
    $t0 = time;
    $r = $ng->request(GET => '/owa/healthcheck.htm');
    $dt = time - $t0;
    is $r->{status}, 504, 'delay beyond proxy_read_timeout -> 504';
    ok $dt >= 0.9 && $dt < 2.5, sprintf 'after the read timeout (%.2f s)', $dt;
    $b->heal;
};

subtest 'truncate and a stopped server' => sub {
    $b->prepend({ path => '^/owa/$', truncate => 30, capture => 'owa-signed-in' });
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 502, 'truncated header -> 502';
    $b->heal;
    $b->stop;
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 502, 'stopped server -> 502';
    # (a cached keep-alive connection may fail first: reset / closed)
    ok scalar($ng->wait_for_error_log(qr/Connection refused|Connection reset|prematurely closed/)),
        'the failed upstream connection is logged';
    $b->start;
    # nginx may still consider the only server failed for fail_timeout (10s);
    # with a single server nginx retries it anyway
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 200, 'back';
};

subtest 're-framed responses through nginx' => sub {
    my $want = capture('owa-signed-in')->body =~ s/\{\{(\w+)\}\}/{FESERVER => 'EXCH1', FQDN => 'exch1.contoso.local', BESERVER => 'EXCH1'}->{$1}/gre;
    $b->clear_log;
    $b->routes({ path => '^/chunked', capture => 'owa-signed-in', chunked => 333 },
               { path => '^/gzip', capture => 'owa-signed-in', gzip => 'auto' },
               { path => '^/split', capture => 'owa-signed-in', split => [10, 500, 5000] },
               { path => '^/stored', capture => 'owa-service-500-chunked' });
    my $r = $ng->request(GET => '/chunked');
    is $r->{body}, $want, 'chunked upstream response';
    $r = $ng->request(GET => '/gzip', accept_encoding => 'gzip');
    is $r->header('Content-Encoding'), 'gzip', 'gzip passed through';
    is $r->{body}, $want, 'gzip decoded by the client';
    $r = $ng->request(GET => '/split');
    is $r->{body}, $want, 'split writes reassembled';
    $r = $ng->request(GET => '/stored');
    is $r->{status}, 500, 'stored chunked capture through nginx';
    is $r->{body}, capture('owa-service-500-chunked')->body, '... body intact';
    my @l = $b->requests;
    is scalar(@l), 4, 'four requests logged';
    is scalar(keys %{ { map { $_->{conn} => 1 } @l } }), 1,
        'nginx upstream keepalive: all on one backend connection';
    $b->heal;
};

$ng->stop;
done_testing;
