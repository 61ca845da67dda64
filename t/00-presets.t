# Harness self-test: presets, break/heal while running, route table
# changes, request logs, EH::Farm helpers.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

my $farm = farm(n => 3);
is_deeply [ $farm->names ], [qw(EXCH1 EXCH2 EXCH3)], 'default names';
my $b = $farm->server('EXCH2');
is $farm->server('exch2'), $b, 'server lookup is case-insensitive';
ok !eval { $farm->server('EXCH9'); 1 }, 'unknown server croaks';

sub get { my ($be, $path, %o) = @_; http_request(GET => $path, port => $be->port, %o) }

subtest 'healthy preset' => sub {
    my @cases = (
        ['/owa/healthcheck.htm', undef, 200, 'healthcheck'],
        ['/ecp/HealthCheck.htm', undef, 200, 'healthcheck'],
        ['/owa/', 'alice', 200, 'owa-signed-in'],
        ['/OWA/', 'alice', 200, 'owa-signed-in'],
        ['/owa/', undef, 302, 'owa-redirect-logon'],
        ['/owa', undef, 302, 'owa-redirect-logon'],
        ['/owa/auth/logon.aspx?url=x', undef, 200, 'owa-logon'],
        ['/owa/service.svc?action=GetX', 'alice', 200, 'owa-service-ok'],
        ['/owa/ev.oeh?ns=x', 'alice', 200, 'owa-service-ok'],
        ['/ecp/', 'alice', 200, 'ecp-page'],
        ['/ecp/', undef, 302, 'owa-redirect-logon'],
        ['/Microsoft-Server-ActiveSync', undef, 200, 'eas-options'],
        ['/EWS/Exchange.asmx', undef, 200, 'ews-ok'],
        ['/owa/prem/15.1.2507.6/scripts/boot.worker.js', undef, 200, 'owa-script'],
        ['/nothing/here', undef, 404, undef],
    );
    $b->clear_log;
    for my $c (@cases) {
        my ($path, $user, $status, $cap) = @$c;
        my $r = get($b, $path, $user ? (signed_in => $user) : ());
        my $who = $user ? "signed-in $path" : "unsigned $path";
        is $r->{status}, $status, "$who -> $status";
        is $b->last_request->{capture}, $cap, "$who -> " . ($cap // 'no capture');
    }
    is $b->current_preset, 'healthy', 'current preset';
};

subtest 'seed preset, heal' => sub {
    $b->clear_log;
    $b->preset('seed');
    my $r = get($b, '/owa/', signed_in => 'alice');
    is $r->{status}, 302, 'seed: signed-in /owa/ -> 302';
    like $r->header('Location'), qr{^/owa/auth/errorFE\.aspx\?httpCode=500}, '... to errorFE.aspx';
    is $b->last_request->{capture}, 'errorfe-redirect', '... the errorfe-redirect capture';
    $r = get($b, '/owa/');
    is $r->{status}, 302, 'seed: unsigned /owa/ -> 302';
    like $r->header('Location'), qr{^/owa/auth/logon\.aspx}, '... the logon redirect';
    $r = http_request(POST => '/owa/service.svc?action=GetFolder', port => $b->port, signed_in => 'alice');
    is $r->{status}, 500, 'seed: service.svc -> 500';
    is $r->header('X-FEServer'), 'EXCH2', '... with X-FEServer';
    is get($b, '/ecp/', signed_in => 'alice')->{status}, 500, 'seed: signed-in /ecp/ -> 500';
    is get($b, '/ecp/', signed_in => 'alice')->header('Content-Type'), 'application/json; charset=utf-8',
        '... json';
    is get($b, '/owa/healthcheck.htm')->{status}, 200, 'seed: healthcheck.htm still 200';
    is get($b, '/owa/auth/logon.aspx')->{status}, 200, 'seed: logon page still 200';
    is get($b, '/Microsoft-Server-ActiveSync')->{status}, 200, 'seed: EAS still 200';
    is get($b, '/EWS/Exchange.asmx')->{status}, 200, 'seed: EWS still 200';
    like get($b, '/owa/auth/errorFE.aspx?httpCode=500', signed_in => 'alice')->{body},
        qr/Something went wrong/, 'seed: the errorFE page';

    my $other = $farm->server('EXCH1');
    is get($other, '/owa/', signed_in => 'alice')->{status}, 200, 'other servers stay healthy';

    $b->heal;
    $r = get($b, '/owa/', signed_in => 'alice');
    is $r->{status}, 200, 'healed: signed-in /owa/ -> 200';
    is $b->last_request->{capture}, 'owa-signed-in', '... owa-signed-in';

    $b->break;
    is get($b, '/owa/', signed_in => 'alice')->{status}, 302, 'break() = seed';
    $b->heal;

    my @seed = grep { $_->{route} =~ /^seed-/ } $b->requests;
    is scalar @seed, 5, 'seed routes logged by name';
};

subtest 'route table changes' => sub {
    $b->prepend({ path => '^/owa/', signed_in => 1, capture => 'errorfe-redirect-quota', user => 'dave' });
    is get($b, '/owa/', signed_in => 'dave')->header('Location') =~ /QuotaExceeded/ ? 1 : 0, 1,
        'prepended route wins for dave';
    is get($b, '/owa/', signed_in => 'alice')->{status}, 200, 'others unaffected';
    is scalar @{ $b->table }, scalar(@EH::Backend::HEALTHY) + 1, 'table grew by one';
    $b->routes({ capture => 'iis-500' });
    is get($b, '/anything')->{status}, 500, 'replaced table';
    ok !defined $b->current_preset, 'no preset after routes()';
    $b->append({ path => '^/never', status => 204 });
    is get($b, '/never')->{status}, 500, 'appended route after a catch-all never matches';
    $b->preset('maintenance');
    my $r = get($b, '/owa/healthcheck.htm', timeout => 3);
    ok !defined $r->{status}, 'maintenance: healthcheck.htm closes the connection';
    is get($b, '/owa/', signed_in => 'x')->{status}, 200, 'maintenance: OWA still answers';
    $b->preset('dead');
    ok !defined get($b, '/owa/', timeout => 3)->{status}, 'dead: no answer';
    $b->heal;
};

subtest 'farm helpers' => sub {
    $farm->clear_logs;
    is $farm->total_hits, 0, 'cleared';
    for my $s ($farm->servers) {
        get($s, '/owa/', signed_in => 'alice') for 1 .. ($s->name =~ /(\d)/)[0];
        get($s, '/owa/healthcheck.htm');
    }
    is_deeply $farm->hits(path => 'healthcheck'), { EXCH1 => 1, EXCH2 => 1, EXCH3 => 1 }, 'hits by path';
    is_deeply $farm->hits(signed_in => 1), { EXCH1 => 1, EXCH2 => 2, EXCH3 => 3 }, 'hits signed in';
    is $farm->total_hits, 9, 'total';
    my @r = $farm->requests(user => 'alice');
    is scalar @r, 6, 'farm requests with user filter';
    is_deeply [ map { $_->{server} } @r ], [qw(EXCH1 EXCH2 EXCH2 EXCH3 EXCH3 EXCH3)],
        'log says which server got which request, in time order';
    is $farm->name_of('127.0.0.1:' . $b->port), 'EXCH2', 'name_of upstream address';

    my $u = $farm->upstream_block('exchange', params => { EXCH3 => 'backup' },
                                  all => 'max_fails=1', extra => "keepalive 4;");
    my @lines = grep { /server 127/ } split /\n/, $u;
    is scalar @lines, 3, 'three server lines';
    like $lines[2], qr/^\s+server 127\.0\.0\.1:\d+ max_fails=1 backup;$/, 'per-server params';
    like $u, qr/^upstream exchange \{\n/, 'upstream header';
    like $u, qr/\n    keepalive 4;\n\}\n\z/, 'extra directives at the end';
    like $farm->upstream_block('x', servers => ['EXCH1']), qr/\A(?:(?!EXCH2=).)*\z/s, 'subset';
    is $farm->proxy_pass('exchange'), 'proxy_pass http://exchange;', 'proxy_pass with the scheme';

    $farm->preset('seed');
    is get($_, '/owa/', signed_in => 'a')->{status}, 302, $_->name . ' seeded' for $farm->servers;
    $farm->heal;
    is get($_, '/owa/', signed_in => 'a')->{status}, 200, $_->name . ' healed' for $farm->servers;
};

done_testing;
