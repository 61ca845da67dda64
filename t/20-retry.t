#!/usr/bin/perl

# The user who lands on the failing server never sees the failure: the
# answer is discarded before any byte reaches the client and the request
# goes to another server, once (to a third when the second failed in
# another way: two broken servers).  The retry is also the diagnosis: another
# server's good answer blames the first; the same failure on another
# server blames none.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Day;

my $farm = farm(tls => 1);
my $user = 0;

my @forms = (
    { name => 'errorFE redirect', preset => 'seed' },
    { name => 'errorFE page as 200',
      route => { capture => 'errorfe-page-en' } },
    { name => '500 with X-FEServer', path => '/owa/service.svc?action=GetItem',
      route => { capture => 'owa-service-500' } },
    { name => 'errorFE page, gzip',
      route => { capture => 'errorfe-page-de', gzip => 1 } },
    { name => 'errorFE page, chunked, split across reads',
      route => { capture => 'errorfe-page-fr', chunked => 5,
                 split => [ map { 600 + 40 * $_ } 0 .. 6 ] } },
);

for my $f (@forms) {
    my $path = $f->{path} // '/owa/';
    (my $match = $path) =~ s/\?.*//;

    $farm->heal;
    $farm->clear_logs;

    if ($f->{preset}) {
        $farm->server('EXCH2')->preset($f->{preset});
    } else {
        $farm->server('EXCH2')->prepend({ path => '^' . quotemeta($match),
                                          signed_in => 1, %{ $f->{route} } });
    }

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my ($bad, $n) = (0, 200);

    for (1 .. $n) {
        my $r = $ng->request(GET => $path, signed_in => 'u' . ++$user,
                             accept_encoding => 'gzip');
        $bad++ if $r->{status} != 200
               || ($r->header('X-FEServer') // '') eq 'EXCH2'
               || $r->{body} =~ /errorfe/i;
    }

    is $bad, 0, "$f->{name}: none of $n signed-in requests got the failure";

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$f->{name}: EXCH2 ejected";
    is $ej[0]{server} // '', 'EXCH2', "$f->{name}: ... EXCH2";

    my @v = EH::Front::wait_verdicts($ng, $n);
    my $rescued = grep { $_->{verdict} eq 'rescued' } @v;
    is $rescued, $farm->server('EXCH2')->hits(path => '^/owa'),
        "$f->{name}: every request EXCH2 got was rescued";
    like $v[0]{upstream_status} . ' ' . ($v[0]{verdict} // ''),
        qr/^(200 healthy|502, 200 rescued)$/,
        "$f->{name}: \$upstream_status shows the discarded answer";

    $ng->stop;
}

subtest 'a POST is retried only when allowed, with the identical body' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ method => 'POST',
        path => '^/owa/service\.svc', capture => 'owa-service-500' });

    my $body = '{"__type":"CreateItemJsonRequest:#Exchange","Body":{"x":"'
               . ('y' x 5000) . '"}}';
    my %post = (body => $body, content_type => 'application/json; charset=utf-8',
                headers => { 'X-OWA-CANARY' => 'canary-123',
                             'Action' => 'CreateItem' });

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my %got;
    for (1 .. 3) {
        my $r = $ng->request(POST => '/owa/service.svc?action=CreateItem',
                             signed_in => 'poster', %post);
        $got{$r->{status}}++;
    }
    is $got{500}, 1, 'without non_idempotent a POST that writes is not retried';

    # a POST that only reads is retried all the same: OWA's FindItem
    %got = ();
    for (1 .. 3) {
        my $r = $ng->request(POST => '/owa/service.svc?action=FindItem',
                             signed_in => 'poster', %post);
        $got{$r->{status}}++;
    }
    is_deeply \%got, { 200 => 3 },
        'without non_idempotent a POST that only reads (action=FindItem) is retried';
    $ng->stop;

    $ng = EH::Front::nginx($farm,
                           location => 'exchange_health_retry on non_idempotent;');
    $ng->start;
    $farm->clear_logs;

    my %status;
    for (1 .. 6) {
        my $r = $ng->request(POST => '/owa/service.svc?action=CreateItem',
                             signed_in => 'poster', %post);
        $status{$r->{status}}++;
    }
    is_deeply \%status, { 200 => 6 }, 'with non_idempotent every POST succeeds';

    my @failed = $farm->server('EXCH2')->requests(method => 'POST');
    ok @failed >= 1, 'EXCH2 got POSTs';

    for my $f (@failed) {
        my ($retry) = grep { $_->{time} >= $f->{time} && $_->{server} ne 'EXCH2' }
                      $farm->requests(method => 'POST');
        ok $retry, 'the failed POST was sent again to another server';
        is $retry->{body}, $body, '... with the identical body';
        is $retry->{headers}{'x-owa-canary'}, 'canary-123', '... and headers';
        is $retry->{headers}{'content-type'}, $post{content_type},
            '... and content type';
        is $retry->{cadata}, $f->{cadata}, '... and the same session';
    }

    $ng->stop;
};

subtest 'a user-specific failure passes through and ejects nothing' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ path => '^/owa/', signed_in => 1,
                                      capture => 'errorfe-redirect-quota' });
    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my $seen = 0;
    for (1 .. 30) {
        my $r = $ng->request(GET => '/owa/', signed_in => 'u' . ++$user);
        $seen++ if $r->{status} == 302
                && $r->header('Location') =~ /QuotaExceededException/;
    }
    is $seen, 10, 'the quota redirect reaches its users unchanged';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'nothing ejected';
    my @v = EH::Front::wait_verdicts($ng, 30);
    is scalar(grep { $_->{verdict} eq 'user-failure' } @v), 10,
        'counted as user failures';
    $ng->stop;
};

subtest 'the same failure on another server blames no server' => sub {
    $farm->heal;
    $farm->clear_logs;
    $_->prepend({ path => '^/owa/', signed_in => 1, user => 'broken',
                  capture => 'errorfe-redirect' }) for $farm->servers;
    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => 'broken') } 1 .. 12;
    is scalar(grep { $_->{status} == 302 } @r), 12,
        'the user gets the failure: it is the request\'s, not a server\'s';
    is $farm->total_hits(path => '^/owa/'), 24, 'each request tried twice, no more';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'no server ejected';

    my @v = EH::Front::wait_verdicts($ng, 12);
    is scalar(grep { $_->{verdict} eq 'request-failure' } @v), 12,
        'verdict request-failure';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => 'u' . ++$user) for 1 .. 9;
    is_deeply $farm->hits(path => '^/owa/'), { EXCH1 => 3, EXCH2 => 3, EXCH3 => 3 },
        'other users still use every server';
    $ng->stop;
};

subtest 'with only one server the original failure reaches the client' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('seed');
    my $ng = EH::Front::nginx($farm, servers => ['EXCH2']);
    $ng->start;

    for (1 .. 3) {
        my $r = $ng->request(GET => '/owa/', signed_in => 'u' . ++$user);
        is $r->{status}, 302, 'the errorFE redirect, unchanged';
        like $r->header('Location'), qr{/owa/auth/errorFE\.aspx\?httpCode=500},
            '... to errorFE.aspx';
    }
    is $farm->server('EXCH2')->hits, 3, 'each request sent once';
    $ng->stop;
};

subtest 'proxy_next_upstream_tries 1 and retry off leave the answer alone' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('seed');

    for my $loc ('proxy_next_upstream_tries 1;', 'exchange_health_retry off;') {
        my $ng = EH::Front::nginx($farm, location => $loc);
        $ng->start;
        my @r = map { $ng->request(GET => '/owa/', signed_in => 'u' . ++$user) }
                1 .. 3;
        is scalar(grep { $_->{status} == 302 } @r), 1,
            "$loc: the failure reaches the client";
        is $farm->total_hits(path => '^/owa/'), 3, "$loc: no retry";
        $farm->clear_logs;
        $ng->stop;
    }
};

subtest 'a broken server after a broken server: one retry, no loop' => sub {
    $farm->heal;
    $farm->clear_logs;
    $farm->server($_)->preset('seed') for qw(EXCH1 EXCH2);
    my $ng = EH::Front::nginx($farm,
                              upstream => 'exchange_health_eject fails=100;');
    $ng->start;

    $farm->clear_logs;
    my $r;
    for (1 .. 9) {
        $r = $ng->request(GET => '/owa/', signed_in => 'u' . ++$user);
    }
    cmp_ok $farm->total_hits(path => '^/owa/'), '<=', 18,
        'never more than two servers per request';
    $ng->stop;
};

subtest 'two broken servers of three: the retry goes to the good one' => sub {
    # weights that make round robin send most retries from one broken
    # server to the other: only the module's memory of who failed lately
    # sends them to EXCH3, which also proves the two broken
    $farm->heal;
    $farm->clear_logs;
    $farm->server($_)->preset('seed') for qw(EXCH1 EXCH2);
    my $ng = EH::Front::nginx($farm,
        params => { EXCH1 => 'weight=10', EXCH2 => 'weight=10' });
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => 'w' . ++$user) }
            1 .. 30;
    my $failed = grep { $_->{status} != 200 } @r;
    cmp_ok $failed, '<=', 2, "$failed of 30 users saw the failure";
    is_deeply [ sort map { $_->{server} } EH::Front::changes($ng, 'ejected') ],
        [ qw(EXCH1 EXCH2) ], 'both broken servers ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'and no farm-wide fault: EXCH3 never failed';
    $ng->stop;
};

subtest 'two servers broken in two ways: the request goes on to the third' => sub {
    # EXCH1 lost its Auth certificate (an errorFE redirect), EXCH2's app
    # pool stopped (HTTP.SYS's 503): the first request meets both, in
    # that order (the weights), and only a third try rescues it.  The
    # same failure twice is the request's: no third try (above).
    $farm->heal;
    $farm->clear_logs;
    my $day = EH::Day->new(farm => $farm);
    $day->set(EXCH1 => 'seed');
    $day->set(EXCH2 => 'app-pool-stopped');
    $day->set(EXCH3 => 'healthy');
    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject fails=100;',
        params => { EXCH1 => 'weight=10', EXCH2 => 'weight=10' });
    $ng->start;

    my $r = $ng->request(GET => '/owa/', signed_in => 'v' . ++$user);
    is $r->{status}, 200, 'the user is served';
    is $r->header('X-FEServer'), 'EXCH3', '... by the third server';
    is_deeply $farm->hits(path => '^/owa/'), { EXCH1 => 1, EXCH2 => 1, EXCH3 => 1 },
        'after the two broken ones, once each';
    my ($v) = EH::Front::wait_verdicts($ng, 1);
    is $v->{verdict}, 'rescued', 'verdict rescued';
    $ng->stop;
};

done_testing;
