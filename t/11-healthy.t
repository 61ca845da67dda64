#!/usr/bin/perl

# Healthy traffic never ejects a server, and neither do failures that
# belong to one user: quota and no-mailbox errors, or one user's broken
# session refreshed again and again (unconfirmed failures from fewer than
# "users" users).  IIS's own 500 page, by contrast, is the server's.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);

# Placeholders of a capture's body filled in as server $name sends them.
sub body_as_sent {
    my ($cap, $name) = @_;
    my $vars = $farm->server($name)->vars;
    (my $b = capture($cap)->body)
        =~ s/\{\{([A-Z0-9_]+)\}\}/exists $vars->{$1} ? $vars->{$1} : "{{$1}}"/ge;
    return $b;
}

sub subst_vars {
    my ($s, $name) = @_;
    my $vars = $farm->server($name)->vars;
    $s =~ s/\{\{([A-Z0-9_]+)\}\}/exists $vars->{$1} ? $vars->{$1} : "{{$1}}"/ge;
    return $s;
}

my $EXCH2 = $farm->server('EXCH2')->addr;

# ---------------------------------------------------------------------
# 1. A healthy farm and a few hundred mixed requests

{
    $farm->heal;
    $farm->clear_logs;
    for my $b ($farm->servers) {
        $b->prepend(
            { name => 'gz-owa-page', signed_in => 1, path => '^/owa/(?:[?]|$)',
              capture => 'owa-signed-in', gzip => 'auto' },
            { name => 'gz-ecp-page', signed_in => 1, path => '^/ecp/(?:[?]|$)',
              capture => 'ecp-page', gzip => 'auto' },
        );
    }

    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 8;');
    $ng->start;

    my $basic = { Authorization => 'Basic ' . 'dXNlcjpwYXNz' };
    my @kinds = (
        { name => 'OWA page', method => 'GET', path => '/owa/', status => 200,
          signed => 1, proto => 'owa' },
        { name => 'OWA page, gzip', method => 'GET', path => '/owa/', status => 200,
          signed => 1, gzip => 1, proto => 'owa', capture => 'owa-signed-in' },
        { name => 'OWA service call', method => 'POST',
          path => '/owa/service.svc?action=GetMailboxRegionalConfiguration',
          body => '{"__type":"GetMailboxRegionalConfigurationRequest:#Exchange"}',
          content_type => 'application/json; charset=utf-8',
          status => 200, signed => 1, proto => 'owa' },
        { name => 'OWA .oeh call', method => 'GET', path => '/owa/ev.owa2.oeh?ns=PendingRequest',
          status => 200, signed => 1, proto => 'owa' },
        { name => 'unsigned /owa/', method => 'GET', path => '/owa/', status => 302,
          signed => 0, proto => 'owa' },
        { name => 'logon page', method => 'GET',
          path => '/owa/auth/logon.aspx?url=https%3a%2f%2fmail.contoso.local%2fowa%2f&reason=0',
          status => 200, signed => 0, proto => 'owa' },
        { name => 'OWA script', method => 'GET',
          path => '/owa/prem/15.1.2507.6/scripts/boot.worker.js',
          status => 200, signed => 1, proto => 'owa' },
        { name => 'ECP page', method => 'GET', path => '/ecp/', status => 200,
          signed => 1, proto => 'ecp' },
        { name => 'ECP page, gzip', method => 'GET', path => '/ecp/', status => 200,
          signed => 1, gzip => 1, proto => 'ecp', capture => 'ecp-page' },
        { name => 'EWS', method => 'POST', path => '/EWS/Exchange.asmx',
          body => '<?xml version="1.0"?><soap:Envelope/>',
          content_type => 'text/xml; charset=utf-8', headers => $basic,
          status => 200, signed => 1, proto => 'ews' },
        { name => 'ActiveSync OPTIONS', method => 'OPTIONS',
          path => '/Microsoft-Server-ActiveSync', headers => $basic,
          status => 200, signed => 1, proto => 'activesync' },
        { name => 'healthcheck.htm', method => 'GET', path => '/owa/healthcheck.htm',
          status => 200, signed => 0, proto => 'owa' },
        { name => 'ECP healthcheck.htm', method => 'GET', path => '/ecp/healthcheck.htm',
          status => 200, signed => 0, proto => 'ecp' },
        { name => '404 in autodiscover', method => 'GET',
          path => '/autodiscover/missing.xml', status => 404, signed => 1,
          proto => 'autodiscover' },
        { name => '404 in oab', method => 'GET', path => '/oab/nothing/here.lzx',
          status => 404, signed => 1, proto => 'oab' },
        { name => '404 in mapi', method => 'GET', path => '/mapi/nope',
          status => 404, signed => 1, proto => 'mapi' },
    );

    my $n = 320;
    my (%bad_status, %bad_body, %gz_ok, %count);
    for my $i (0 .. $n - 1) {
        my $k = $kinds[$i % @kinds];
        my $r = $ng->request($k->{method} => $k->{path},
            ($k->{signed} ? (signed_in => 'user' . ($i % 40 + 1)) : ()),
            (defined $k->{body} ? (body => $k->{body},
                                   content_type => $k->{content_type}) : ()),
            ($k->{headers} ? (headers => $k->{headers}) : ()),
            ($k->{gzip} ? (accept_encoding => 'gzip') : ()));
        $count{ $k->{name} }++;
        push @{ $bad_status{ $k->{name} } }, ($r->{error} // $r->summary)
            unless !$r->{error} && defined $r->{status}
                   && $r->{status} == $k->{status};
        if ($k->{gzip} && !$r->{error}) {
            my $fe = $r->header('X-FEServer') // 'EXCH1';
            $gz_ok{ $k->{name} }++
                if ($r->header('Content-Encoding') // '') eq 'gzip'
                   && $r->{body} eq body_as_sent($k->{capture}, $fe);
        }
    }
    for my $k (@kinds) {
        ok !$bad_status{ $k->{name} },
            "healthy farm: every '$k->{name}' answered $k->{status}"
            or diag explain $bad_status{ $k->{name} };
    }
    for my $k (grep { $_->{gzip} } @kinds) {
        is $gz_ok{ $k->{name} } // 0, $count{ $k->{name} },
            "healthy farm: '$k->{name}' reached gzip-accepting clients gzip'd and intact";
    }

    my @v = EH::Front::wait_verdicts($ng, $n);
    is scalar(@v), $n, "healthy farm: $n requests logged";
    my %verdicts;
    $verdicts{ $_->{verdict} }++ for @v;
    my $anon = $count{'logon page'};
    is_deeply \%verdicts, { healthy => $n - $anon, '-' => $anon },
        'healthy farm: every verdict is "healthy", but the logon page\'s: '
        . 'an anonymous page is not judged';
    my @multi = grep { $_->{upstream_addr} =~ /,/ } @v;
    is scalar(@multi), 0, 'healthy farm: no request was sent to a second server';

    my %proto;
    $proto{ $_->{protocol} }++ for @v;
    is_deeply [ sort keys %proto ],
        [ sort qw(owa ecp ews activesync autodiscover oab mapi) ],
        'healthy farm: the protocols seen are the ones requested';

    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        'healthy farm: no server ejected';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'healthy farm: no farm-wide fault';
    is scalar($ng->grep_error_log(qr/trying another server/)), 0,
        'healthy farm: nothing retried';

    my $hits = $farm->hits;
    my $total = $farm->total_hits;
    is $total, $n, "healthy farm: the farm got the $n requests";
    for my $name ($farm->names) {
        cmp_ok $hits->{$name}, '>=', int($n / 4),
            "healthy farm: $name got its share ($hits->{$name} of $n)";
    }

    # and after all that, every server still takes OWA and ECP requests
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "late$_") for 1 .. 15;
    $ng->request(GET => '/ecp/', signed_in => "late$_") for 1 .. 15;
    for my $name ($farm->names) {
        my $b = $farm->server($name);
        cmp_ok $b->hits(path => '^/owa/'), '>=', 3,
            "healthy farm: $name still gets OWA requests";
        cmp_ok $b->hits(path => '^/ecp/'), '>=', 3,
            "healthy farm: $name still gets ECP requests";
    }

    $ng->stop;
}

# ---------------------------------------------------------------------
# 2. IIS's own 500 page (no X-FEServer: the directory's configuration is
#    broken, 500.19) is a server failure: the request is rescued by another
#    server, so no client sees it, and the server is taken out.

{
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend(
        { path => '^/owa/', signed_in => 1, capture => 'iis-500' });

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => "iis$_") } 1 .. 30;
    is scalar(grep { defined $_->{status} && $_->{status} == 500 } @r), 0,
        'IIS 500: no client saw one';
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'IIS 500: one ejection';
    is $farm->name_of($ej[0]{addr}), 'EXCH2', 'IIS 500: EXCH2 ejected';
    is $ej[0]{rule}, 'iis-500', 'IIS 500: by rule iis-500';

    $ng->stop;
}

# ---------------------------------------------------------------------
# 3. User-specific failures: quota, no mailbox.  They reach the user as
#    sent (retry is on), are logged user-failure, and never eject.

my @user_cases = (
    { name => 'errorFE redirect, QuotaExceededException',
      capture => 'errorfe-redirect-quota', path => '/owa/', match => '^/owa/$' },
    { name => 'errorFE page, QuotaExceededException',
      capture => 'errorfe-page-quota', path => '/owa/', match => '^/owa/$' },
    { name => 'service call 500, UserHasNoMailboxException',
      capture => 'owa-service-500-nomailbox',
      path => '/owa/service.svc?action=GetFolder', match => '^/owa/service\.svc' },
);

for my $c (@user_cases) {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend(
        { path => $c->{match}, signed_in => 1, capture => $c->{capture} });

    my $ng = EH::Front::nginx($farm,
                              upstream => 'exchange_health_eject time=60s;');
    $ng->start;

    my $cap = capture($c->{capture});
    my @r = map { $ng->request(GET => $c->{path}, signed_in => "quota$_") } 1 .. 24;
    my @from2 = grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r;

    is scalar(@from2), 8, "$c->{name}: the client got all 8 answers of EXCH2";
    my @same = grep {
        $_->{status} == $cap->status
        && $_->{body} eq body_as_sent($c->{capture}, 'EXCH2')
        && ($_->header('X-OWA-Error') // '') eq ($cap->header('X-OWA-Error') // '')
        && ($_->header('Location') // '') eq subst_vars($cap->header('Location') // '', 'EXCH2')
    } @from2;
    is scalar(@same), 8, "$c->{name}: unchanged (status, headers, body)";

    my @v = EH::Front::wait_verdicts($ng, 24);
    my @v2 = grep { $_->{upstream_addr} eq $EXCH2 } @v;
    is_deeply [ map { $_->{verdict} } @v2 ], [ ('user-failure') x 8 ],
        "$c->{name}: verdict user-failure";
    is scalar(grep { $_->{upstream_addr} =~ /,/ } @v), 0,
        "$c->{name}: not retried on another server";
    is scalar(grep { $_->{verdict} ne 'healthy' && $_->{upstream_addr} ne $EXCH2 } @v), 0,
        "$c->{name}: the other servers' answers are healthy";
    is scalar(EH::Front::changes($ng, 'ejected')), 0, "$c->{name}: no ejection";
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 8,
        "$c->{name}: EXCH2 kept its share of requests";

    $ng->stop;
}

# ---------------------------------------------------------------------
# 4. One user, a broken EXCH2, retry off: unconfirmed failures from one
#    user never eject (users=2); a second user's failure does.

{
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->preset('seed');

    my $ng = EH::Front::nginx($farm,
                              upstream => 'exchange_health_eject time=60s;',
                              location => 'exchange_health_retry off;');
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => 'alice') } 1 .. 36;
    my @failed = grep { ($_->header('Location') // '') =~ m{/auth/errorFE\.aspx} } @r;
    is scalar(@failed), 12, 'one user: alice saw EXCH2 fail 12 times';
    is $farm->server('EXCH2')->hits(path => '^/owa/', user => 'alice'), 12,
        'one user: EXCH2 kept getting her requests';
    my @v = EH::Front::wait_verdicts($ng, 36);
    is scalar(grep { $_->{verdict} eq 'failure' } @v), 12,
        'one user: her 12 failures are logged as failures';
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        'one user: no ejection however many times she refreshes';

    # a second user meets EXCH2's failure: now two users, enough failures
    my $m = $ng->mark;
    my $bob_failed = 0;
    for (1 .. 3) {
        my $r = $ng->request(GET => '/owa/', signed_in => 'bob');
        if (($r->header('X-FEServer') // '') eq 'EXCH2') { $bob_failed = 1; last }
    }
    ok $bob_failed, 'one user: bob reached EXCH2 and saw the failure';
    $ng->wait_for_error_log(qr/ejected for/, since => $m);
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'second user: one ejection';
    is $farm->name_of($ej[0]{addr}), 'EXCH2', 'second user: EXCH2 ejected';
    is $ej[0]{protocol}, 'owa', 'second user: for owa';
    is $ej[0]{rule}, 'errorfe-redirect', 'second user: rule errorfe-redirect';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "after$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
        'second user: EXCH2 gets no more OWA requests';

    $ng->stop;
}

done_testing;
