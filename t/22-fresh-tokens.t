#!/usr/bin/perl

# Bearer (modern authentication): a server that cannot validate tokens
# refuses every token with 401 invalid_token and x-ms-diagnostics
# 2000009.  A token no server has accepted yet (a client's first
# request, or the first after its silent refresh) is not known good:
# that refusal is sent on to another server, once, and counts against
# its server only when that server's answer proves the token.  A token
# every server refuses (made up, expired) moves nothing and is asked of
# two servers at most.  On a farm that sends every header and one that
# strips the servers' names (X-BEServer, X-FEServer and the like).

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use List::Util qw(sum);

my $farm = farm(tls => 1);

my @BE = qw(X-BEServer X-CalculatedBETarget X-DiagInfo);

my $FIND = '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
    . '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://'
    . 'schemas.microsoft.com/exchange/services/2006/messages"><soap:Body>'
    . '<m:FindItem><m:ItemShape/></m:FindItem></soap:Body></soap:Envelope>';

# how a server that can validate tokens refuses a made-up one
# ("Unable to read or process token", 2000001: the client's)
sub made_up_routes {
    return map { +{ name => 'made-up', path => '^/EWS/', user => "mallory$_",
        capture => 'ews-401-invalid-token',
        headers => { 'x-ms-diagnostics' => '2000001;reason="Unable to read '
            . 'or process token.";error_category="invalid_token"' } } } 1 .. 12;
}

sub find_item {
    my ($ng, $user) = @_;
    return $ng->request(POST => '/EWS/Exchange.asmx', signed_in => $user,
                        auth => 'bearer', body => $FIND,
                        content_type => 'text/xml');
}

sub counted {
    my ($ng, $name) = @_;
    my ($j) = EH::Front::status_json($ng);
    my ($s) = grep { $_->{name} eq $name } @{ $j->{upstreams}[0]{servers} };
    return sum(0, map { $_->{failures} // 0 } values %{ $s->{protocols} });
}

for my $strip ([], [ @BE, 'X-FEServer' ]) {
    my $kind = @$strip ? 'a farm that strips the names' : 'a farm that '
             . 'sends every header';

    $farm->heal;
    $farm->strip(@$strip);
    for my $b ($farm->servers) {
        # EXCH2 refuses every token, made-up ones too
        $b->preset($b->name eq 'EXCH2' ? 'bearer-broken' : 'healthy',
                   prepend => [ $b->name eq 'EXCH2' ? () : made_up_routes() ],
                   strip => $strip);
    }
    $farm->clear_logs;

    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=60s;',
        server => 'location = /status { exchange_health_status; }');
    $ng->start;

    # made-up tokens first, while no token is known good anywhere
    my @r = map { find_item($ng, "mallory$_") } 1 .. 12;
    is_deeply [ grep { $_ != 401 } map { $_->{status} } @r ], [],
        "$kind: 12 made-up tokens: each refused (401)";
    ok $farm->total_hits(path => '^/EWS/') <= 24,
        "$kind: ... each asked of two servers at most ("
        . $farm->total_hits(path => '^/EWS/') . ' requests)';
    ok $farm->server('EXCH2')->hits(path => '^/EWS/') >= 1,
        "$kind: ... EXCH2 among them";
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        "$kind: ... nothing ejected";
    is counted($ng, 'EXCH2') + counted($ng, 'EXCH1') + counted($ng, 'EXCH3'),
        0, "$kind: ... no failure counted against any server";

    # fresh tokens of real users: the first request of each
    $farm->clear_logs;
    my $mark = $ng->mark;
    my @fresh = map { find_item($ng, "fresh$_") } 1 .. 12;
    is_deeply [ grep { $_ != 200 } map { $_->{status} } @fresh ], [],
        "$kind: 12 fresh tokens: no user met the refusal";
    ok $farm->server('EXCH2')->hits(path => '^/EWS/') >= 1,
        "$kind: ... EXCH2 was asked";
    my @ej = EH::Front::changes($ng, 'ejected', since => $mark);
    is scalar(@ej), 1, "$kind: ... EXCH2 taken out"
        or diag $ng->error_log;
    is $ej[0]{addr}, $farm->server('EXCH2')->addr, "$kind: ... EXCH2 only"
        if @ej;
    is $ej[0]{rule}, 'bearer-rejected', "$kind: ... by bearer-rejected"
        if @ej;
    is counted($ng, 'EXCH1') + counted($ng, 'EXCH3'), 0,
        "$kind: ... nothing counted against the others";

    my @v = grep { $_->{uri} eq '/EWS/Exchange.asmx' && $_->{status} == 200 }
            EH::Front::wait_verdicts($ng, 24);
    ok scalar(grep { $_->{verdict} eq 'rescued' } @v) >= 1,
        "$kind: ... the refused requests rescued";
    $ng->stop;
}

$farm->strip();
$farm->heal;

done_testing;
