#!/usr/bin/perl

# Configured rules and the variables: new rules (header regex, quoted
# body marker), built-in rules replaced or switched off by name,
# scope=user, exchange_health_user_errors, inheritance between http and
# location levels, exchange_health_detect off, exchange_health_protocol,
# and $exchange_health_verdict / _server / _protocol.

# The users here make one request each and never opened OWA before, so
# the upstreams say voters=any: these tests are about what is found in
# answers, t/19-who-votes.t about who may vote.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);
my $EXCH2 = $farm->server('EXCH2')->addr;
my $scheme = $farm->scheme;

# A location proxying to the farm like EH::Front's "location /".
sub loc {
    my ($path, @lines) = @_;
    return join "\n", "location $path {",
        "    proxy_pass $scheme://exchange;",
        '    proxy_ssl_verify off;',
        '    proxy_http_version 1.1;',
        '    proxy_set_header Connection "";',
        (map { "    $_" } @lines), "}", "";
}

# $exchange_health_verdict as empty / "-" / a value, for each request
my $KIND_LOG = <<'CONF';
map $exchange_health_verdict $eh_verdict_kind {
    ""       empty;
    "-"      dash;
    default  value;
}
log_format eh_kind '$uri $eh_verdict_kind';
access_log {{PREFIX}}/logs/kind.log eh_kind;
CONF

sub verdict_kinds {
    my ($ng) = @_;
    my $f = $ng->prefix . '/logs/kind.log';
    return () unless -e $f;
    return map { [ split / / ] } split /\n/, slurp($f);
}

# $n GET requests to $path by users "${prefix}1".. ; the responses
sub drive {
    my ($ng, $path, $n, $prefix, %o) = @_;
    return map { $ng->request($o{method} // 'GET', $path,
                              signed_in => "$prefix$_", %{ $o{req} || {} }) } 1 .. $n;
}

sub from2 { grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @_ }

# The one ejection expected: EXCH2, for $proto, by $rule
sub one_ejection {
    my ($ng, $what, $proto, $rule) = @_;
    $ng->wait_for_error_log(qr/ejected for/);
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$what: one ejection"
        or diag join "\n", map { $_->{line} } @ej;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$what: EXCH2 ejected";
    is $ej[0]{protocol}, $proto, "$what: for $proto";
    is $ej[0]{rule}, $rule, "$what: logged with rule \"$rule\"";
}

sub no_ejection {
    my ($ng, $what) = @_;
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 0, "$what: no ejection"
        or diag join "\n", map { $_->{line} } @ej;
}

my $MAINT = 'exchange_health_rule maint status=503 header=X-Custom~*maintenance;';
my $MAINT_ROUTE = { status => 503, headers => { 'X-Custom' => 'Scheduled MAINTENANCE window' } };

# ---------------------------------------------------------------------
# 1. A new rule: status and a case-insensitive header regex

{
    $farm->heal;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/', %$MAINT_ROUTE });

    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
                              location => "exchange_health_retry off;\n$MAINT");
    $ng->start;
    my @r = drive($ng, '/owa/', 9, 'maint');
    is scalar(grep { $_->{status} == 503 } from2(@r)), 3,
        'rule maint: EXCH2 answered 503 with X-Custom';
    one_ejection($ng, 'rule maint', 'owa', 'maint');
    my @v = EH::Front::wait_verdicts($ng, 9);
    is_deeply [ map { $_->{verdict} } grep { $_->{upstream_addr} eq $EXCH2 } @v ],
        [ ('failure') x 3 ], 'rule maint: verdict failure';
    $ng->stop;

    # the same 503 without the header value the regex wants
    $farm->heal;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/', status => 503,
                                      headers => { 'X-Custom' => 'upgrade' } });
    $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
                           location => "exchange_health_retry off;\n$MAINT");
    $ng->start;
    drive($ng, '/owa/', 12, 'upgrade');
    no_ejection($ng, 'rule maint, header not matching');
    $ng->stop;
}

# ---------------------------------------------------------------------
# 2. A body rule with a quoted marker that has spaces

{
    my $page = "<html><head><title>Oops</title></head><body>\r\n"
             . "<h1>Our custom error page</h1><p>Please come back later.</p>\r\n"
             . "</body></html>\r\n";
    $farm->heal;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/', body => $page });

    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
        location => qq{exchange_health_retry off;\nexchange_health_rule custom "body=Our custom error page";});
    $ng->start;
    my @r = drive($ng, '/owa/', 9, 'custom');
    is scalar(grep { $_->{body} eq $page } from2(@r)), 3,
        'quoted body rule: EXCH2 sent its page';
    one_ejection($ng, 'quoted body rule', 'owa', 'custom');
    $ng->stop;
}

# ---------------------------------------------------------------------
# 2b. scan= : a rule's markers are looked for in its first bytes only

for my $c ([ 500, 'inside', 1 ], [ 2000, 'past', 0 ]) {
    my ($at, $where, $found) = @$c;
    my $what = "scan=1k, marker $where it";
    my $page = "<html><body>\r\n" . ('<p>mail</p>' x int($at / 11))
             . "Our custom error page</body></html>\r\n";
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/', body => $page });

    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
        location => qq{exchange_health_retry off;\n}
                  . qq{exchange_health_rule custom "body=Our custom error page" scan=1k;});
    $ng->start;
    my @r = drive($ng, '/owa/', 9, "scan$at-");
    is scalar(grep { $_->{body} eq $page } from2(@r)), 3, "$what: EXCH2 sent its page";
    my @v = EH::Front::wait_verdicts($ng, 9);
    is join(' ', map { $_->{verdict} } grep { $_->{upstream_addr} eq $EXCH2 } @v),
       join(' ', ($found ? 'failure' : 'healthy') x 3),
       "$what: " . ($found ? 'a failure' : 'healthy');
    if ($found) { one_ejection($ng, $what, 'owa', 'custom') }
    else        { no_ejection($ng, $what) }
    $ng->stop;
}

# ---------------------------------------------------------------------
# 3. Built-in rules replaced or switched off by name

{
    # exchange-500 would take the 500 by its request-id: off with it
    my $FE500 = 'exchange_health_rule fe500 status=500 header=X-FEServer~^NOBODY$;'
              . "\nexchange_health_rule exchange-500 off;";

    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
                              location => "exchange_health_retry off;\n$FE500");
    $ng->start;
    my @r = drive($ng, '/owa/service.svc?action=GetFolder', 12, 'fe500-');
    is scalar(grep { $_->{status} == 500 } from2(@r)), 4,
        'fe500 replaced: EXCH2 answered 500 with X-FEServer';
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ],
        'fe500 replaced: owa-service-500 is no longer a failure';
    no_ejection($ng, 'fe500 replaced');
    $ng->stop;

    # the replacement is in force: its own header condition ejects
    $farm->heal;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/service\.svc',
        capture => 'owa-service-500', headers => { 'X-FEServer' => 'NOBODY' } });
    $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
                           location => "exchange_health_retry off;\n$FE500");
    $ng->start;
    drive($ng, '/owa/service.svc?action=GetFolder', 9, 'nobody');
    one_ejection($ng, 'fe500 replaced, its new condition', 'owa', 'fe500');
    $ng->stop;

    # errorfe-redirect off: the seed case does not eject
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
        location => "exchange_health_retry off;\nexchange_health_rule errorfe-redirect off;");
    $ng->start;
    @r = drive($ng, '/owa/', 12, 'redir-off');
    is scalar(grep { $_->{status} == 302
                     && ($_->header('Location') // '') =~ m{/auth/errorFE\.aspx} } from2(@r)), 4,
        'errorfe-redirect off: EXCH2 sent the errorFE redirect';
    @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ],
        'errorfe-redirect off: not a failure';
    no_ejection($ng, 'errorfe-redirect off');
    $ng->stop;
}

# ---------------------------------------------------------------------
# 4. scope=user on a custom rule; exchange_health_user_errors

{
    $farm->heal;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/', %$MAINT_ROUTE });
    my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
        location => 'exchange_health_rule mine status=503 header=X-Custom scope=user;');
    $ng->start;
    my @r = drive($ng, '/owa/', 15, 'mine');
    is scalar(grep { $_->{status} == 503 } from2(@r)), 5,
        'scope=user: the user gets the 503 (not retried, retry on)';
    my @v = EH::Front::wait_verdicts($ng, 15);
    is_deeply [ map { $_->{verdict} } grep { $_->{upstream_addr} eq $EXCH2 } @v ],
        [ ('user-failure') x 5 ], 'scope=user: verdict user-failure';
    is scalar(grep { $_->{upstream_addr} =~ /,/ } @v), 0, 'scope=user: never retried';
    no_ejection($ng, 'scope=user');
    $ng->stop;

    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=60s voters=any;',
        location => 'exchange_health_user_errors "ExAssertException";');
    $ng->start;
    @r = drive($ng, '/owa/', 15, 'assert');
    is scalar(grep { $_->{status} == 302
                     && ($_->header('Location') // '') =~ m{/auth/errorFE\.aspx} } from2(@r)), 5,
        'user_errors ExAssertException: the user gets the seed redirect (not retried)';
    @v = EH::Front::wait_verdicts($ng, 15);
    is_deeply [ map { $_->{verdict} } grep { $_->{upstream_addr} eq $EXCH2 } @v ],
        [ ('user-failure') x 5 ], 'user_errors ExAssertException: verdict user-failure';
    no_ejection($ng, 'user_errors ExAssertException');
    $ng->stop;
}

# ---------------------------------------------------------------------
# 5. Inheritance: a rule at http level applies in a location that adds
#    its own rule; "off" in one location leaves the others alone; a rule
#    redefined by name in a location replaces the http one there only;
#    a server-level rule reaches the locations

{
    my %conf = (
        upstream => 'exchange_health_eject time=60s voters=any;',
        http     => $MAINT,
        location => 'exchange_health_retry off;',
        server   => "exchange_health_rule srv status=409;\n"
                  . loc('/owa/', 'exchange_health_retry off;',
                        'exchange_health_rule extra status=418;')
                  . loc('/ecp/', 'exchange_health_retry off;',
                        'exchange_health_rule maint off;')
                  . loc('/autodiscover/', 'exchange_health_retry off;',
                        'exchange_health_rule maint status=503 header=X-Custom~^upgrade$;'),
    );

    $farm->heal;
    $farm->server('EXCH2')->prepend(
        { signed_in => 1, path => '^/(owa|ecp|EWS|autodiscover)/maint', %$MAINT_ROUTE },
        { signed_in => 1, path => '^/autodiscover/upgrade', status => 503,
          headers => { 'X-Custom' => 'upgrade' } },
        { signed_in => 1, path => '^/owa/teapot', status => 418 },
        { signed_in => 1, path => '^/mapi/conflict', status => 409 },
    );

    my $ng = EH::Front::nginx($farm, %conf);
    $ng->start;
    drive($ng, '/owa/maint', 9, 'inh-owa');
    drive($ng, '/EWS/maint', 9, 'inh-ews');
    drive($ng, '/ecp/maint', 12, 'inh-ecp');
    drive($ng, '/autodiscover/maint', 12, 'inh-ad');
    $ng->wait_for_error_log(qr/ejected for ews/);
    my %ej = map { $_->{protocol} => $_ } EH::Front::changes($ng, 'ejected');
    is_deeply [ sort keys %ej ], [qw(ews owa)],
        'inheritance: ejected for owa and ews, not for ecp or autodiscover';
    is $ej{owa}{rule}, 'maint',
        'inheritance: the http-level rule applies in a location with its own rule';
    is $ej{ews}{rule}, 'maint',
        'inheritance: the http-level rule applies in a location without rules';
    is $farm->name_of($ej{$_}{addr}), 'EXCH2', "inheritance: EXCH2 ejected for $_"
        for sort keys %ej;
    my @v = EH::Front::wait_verdicts($ng, 42);
    is_deeply [ map { $_->{verdict} } grep { $_->{uri} eq '/ecp/maint' } @v ],
        [ ('healthy') x 12 ], 'inheritance: maint off in /ecp/ only';
    is_deeply [ map { $_->{verdict} } grep { $_->{uri} eq '/autodiscover/maint' } @v ],
        [ ('healthy') x 12 ], 'inheritance: maint redefined in /autodiscover/ replaces the http one';

    drive($ng, '/autodiscover/upgrade', 9, 'inh-up');
    $ng->wait_for_error_log(qr/ejected for autodiscover/);
    drive($ng, '/mapi/conflict', 9, 'inh-mapi');
    $ng->wait_for_error_log(qr/ejected for mapi/);
    %ej = map { $_->{protocol} => $_ } EH::Front::changes($ng, 'ejected');
    is $ej{autodiscover} && $ej{autodiscover}{rule}, 'maint',
        'inheritance: the redefined maint is in force in /autodiscover/';
    is $ej{mapi} && $ej{mapi}{rule}, 'srv', 'inheritance: a server-level rule applies';
    is scalar(EH::Front::changes($ng, 'ejected')), 4,
        'inheritance: four ejections in all (owa, ews, autodiscover, mapi)';
    $ng->stop;

    # the location's own rule
    $ng = EH::Front::nginx($farm, %conf);
    $ng->start;
    drive($ng, '/owa/teapot', 9, 'teapot');
    one_ejection($ng, 'location rule', 'owa', 'extra');
    $ng->stop;

    # switching off one rule keeps the built-ins in that location (the
    # seed's ECP 500 is named by its jsonerror header: ecp-json)
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    $ng = EH::Front::nginx($farm, %conf);
    $ng->start;
    drive($ng, '/ecp/', 9, 'ecp-seed');
    one_ejection($ng, 'location with maint off', 'ecp', 'ecp-json');
    $ng->stop;
}

# ---------------------------------------------------------------------
# 6. exchange_health_detect off in a location

{
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=60s voters=any;',
        http     => $KIND_LOG,
        server   => loc('/owa/', 'exchange_health_detect off;')
                  . loc('/owa/service.svc', 'exchange_health_retry off;'));
    $ng->start;
    my @r = drive($ng, '/owa/', 12, 'nodetect');
    is scalar(grep { $_->{status} == 302 } from2(@r)), 4,
        'detect off: the errorFE redirect reaches the user (no retry)';
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('-') x 12 ],
        'detect off: verdict "-" in the log';
    is scalar(grep { $_->{upstream_addr} =~ /,/ } @v), 0, 'detect off: nothing retried';
    no_ejection($ng, 'detect off');
    my @k = verdict_kinds($ng);
    is_deeply [ map { $_->[1] } @k ], [ ('empty') x 12 ],
        'detect off: $exchange_health_verdict is empty';

    # still balanced around ejected servers: EXCH2 ejected for owa by
    # service calls (detect on there), /owa/ avoids it
    drive($ng, '/owa/service.svc?action=GetFolder', 9, 'svc');
    $ng->wait_for_error_log(qr/ejected for owa/);
    $farm->clear_logs;
    drive($ng, '/owa/', 6, 'nodetect-after');
    is $farm->server('EXCH2')->hits(path => '^/owa/$'), 0,
        'detect off: requests are still balanced around the ejected EXCH2';
    $ng->stop;
}

# ---------------------------------------------------------------------
# 7. exchange_health_protocol owa on a location serving /mail/

{
    $farm->heal;
    for my $b ($farm->servers) {
        $b->prepend({ signed_in => 1, path => '^/(mail|plain)/',
                      capture => $b->name eq 'EXCH2' ? 'errorfe-redirect' : 'owa-signed-in' });
    }
    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject time=60s voters=any;',
        location => 'exchange_health_retry off;',
        server   => loc('/mail/', 'exchange_health_protocol owa;',
                        'exchange_health_retry off;'));
    $ng->start;

    # a path no Exchange vdir names is only routed
    drive($ng, '/plain/', 12, 'plain');
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { "$_->{protocol} $_->{verdict}" } @v ], [ ('other -') x 12 ],
        'protocol auto: /plain/ is "other" and not judged';
    no_ejection($ng, 'protocol auto, /plain/');

    drive($ng, '/mail/', 9, 'mail');
    @v = EH::Front::wait_verdicts($ng, 21);
    is_deeply [ map { $_->{protocol} } grep { $_->{uri} eq '/mail/' } @v ], [ ('owa') x 9 ],
        'protocol owa: /mail/ requests are owa';
    one_ejection($ng, 'protocol owa on /mail/', 'owa', 'errorfe-redirect');

    $farm->clear_logs;
    drive($ng, '/owa/', 6, 'owa-after');
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
        'protocol owa: EXCH2 ejected for /owa/ too';
    $ng->stop;
}

# ---------------------------------------------------------------------
# 8. The variables

{
    $farm->heal;
    $farm->server('EXCH2')->preset('seed');
    $farm->server('EXCH2')->prepend(
        { signed_in => 1, user => 'quota', path => '^/owa/quota',
          capture => 'errorfe-redirect-quota' });
    for my $b ($farm->servers) {
        $b->prepend({ signed_in => 1, path => '^/owa/quota', capture => 'owa-signed-in' })
            unless $b->name eq 'EXCH2';
        $b->prepend({ path => '^/foo', capture => 'owa-signed-in' });
    }
    my $ng = EH::Front::nginx($farm,
        upstream => 'exchange_health_eject fails=1000;',
        http     => $KIND_LOG,
        server   => loc('/owa/', 'exchange_health_retry off;'));
    $ng->start;

    my $n = 0;
    my $one = sub {
        my ($path, %o) = @_;
        my $method = delete $o{method} // 'GET';
        my $r = $ng->request($method, $path, %o);
        $n++;
        my @v = EH::Front::wait_verdicts($ng, $n);
        return ($r, $v[-1]);
    };

    # healthy, failure, user-failure: three requests each, one per server
    # (in blocks: round robin goes on turning across them)
    my %seen;
    push @{ $seen{healthy} }, [ $one->('/ews/exchange.asmx', method => 'POST',
        body => '<x/>', content_type => 'text/xml', signed_in => "ews$_") ] for 1 .. 3;
    push @{ $seen{owa} }, [ $one->('/owa/', signed_in => "fail$_") ] for 1 .. 3;
    push @{ $seen{quota} }, [ $one->('/owa/quota', signed_in => 'quota') ] for 1 .. 3;
    is_deeply [ map { $_->[1]{verdict} } @{ $seen{healthy} } ], [ ('healthy') x 3 ],
        'verdict: healthy';
    is_deeply [ sort map { $_->[1]{server} } @{ $seen{healthy} } ], [qw(EXCH1 EXCH2 EXCH3)],
        'server: each healthy answer\'s X-FEServer';
    is_deeply [ map { $_->[1]{server} } @{ $seen{healthy} } ],
        [ map { $_->[0]->header('X-FEServer') } @{ $seen{healthy} } ],
        'server: the X-FEServer the client got';

    my ($fail) = grep { ($_->[0]->header('X-FEServer') // '') eq 'EXCH2' } @{ $seen{owa} };
    ok $fail && $fail->[0]{status} == 302, 'failure: EXCH2\'s errorFE redirect reached the client';
    is $fail && $fail->[1]{verdict}, 'failure', 'verdict: failure (retry off)';
    is $fail && $fail->[1]{server}, 'EXCH2', 'server: EXCH2 for the failure';
    is_deeply [ sort map { $_->[1]{verdict} } @{ $seen{owa} } ],
        [qw(failure healthy healthy)], 'verdict: the others healthy';

    my ($q) = grep { ($_->[0]->header('X-FEServer') // '') eq 'EXCH2' } @{ $seen{quota} };
    ok $q && ($q->[0]->header('Location') // '') =~ /QuotaExceededException/,
        'user-failure: the quota redirect reached the client';
    is $q && $q->[1]{verdict}, 'user-failure', 'verdict: user-failure';
    is $q && $q->[1]{server}, 'EXCH2', 'server: EXCH2 for the user failure';

    # rescued: retry on (location /), EXCH2's ECP fails, another answers
    my @ecp = map { [ $one->('/ecp/', signed_in => "ecp$_") ] } 1 .. 3;
    my ($rescued) = grep { $_->[1]{upstream_addr} =~ /^\Q$EXCH2\E, / } @ecp;
    ok $rescued, 'rescued: a request went to EXCH2, then to another server';
    is $rescued && $rescued->[1]{verdict}, 'rescued', 'verdict: rescued';
    is $rescued && $rescued->[0]{status}, 200, 'rescued: the client got a good page';
    my $got = $rescued ? $rescued->[0]->header('X-FEServer') : '';
    like $got, qr/^EXCH[13]$/, 'rescued: from EXCH1 or EXCH3';
    is $rescued && $rescued->[1]{server}, $got,
        'server: the X-FEServer of the answer the client got, not EXCH2\'s';
    is $rescued && $farm->name_of((split /, /, $rescued->[1]{upstream_addr})[1]), $got,
        'rescued: the second upstream is the one that answered';

    # an answer without X-FEServer: empty
    my ($r, $v) = $one->('/owa/auth/logon.aspx?url=%2fowa%2f&reason=0');
    is $v->{server}, '-', 'server: empty for an answer without X-FEServer';

    # every answer of a kept-alive connection: the module reads the
    # server's name from a few answers only, the variable from each
    {
        my $c = $ng->client(timeout => 5);
        my @pairs;
        for my $i (1 .. 20) {
            my $r = $c->request(POST => '/ews/exchange.asmx', body => '<x/>',
                                content_type => 'text/xml', signed_in => "ka$i");
            $n++;
            my @v = EH::Front::wait_verdicts($ng, $n);
            push @pairs, [ $r->header('X-FEServer') // 'none', $v[-1]{server} ];
        }
        is scalar(grep { $_->[0] =~ /^EXCH\d$/ && $_->[0] eq $_->[1] } @pairs), 20,
            'server: each answer\'s X-FEServer on one kept-alive connection'
            or diag join ' ', map { "$_->[0]/$_->[1]" } @pairs;
    }

    # protocols
    my %proto;
    for my $p ('/owa/', '/ecp/', '/EWS/Exchange.asmx', '/Microsoft-Server-ActiveSync',
               '/foo', '/OWA/', '/microsoft-server-activesync') {
        my ($r, $v) = $one->($p, signed_in => 'proto');
        $proto{$p} = $v->{protocol};
    }
    is_deeply \%proto, {
        '/owa/' => 'owa', '/ecp/' => 'ecp', '/EWS/Exchange.asmx' => 'ews',
        '/Microsoft-Server-ActiveSync' => 'activesync', '/foo' => 'other',
        '/OWA/' => 'owa', '/microsoft-server-activesync' => 'activesync',
    }, 'protocol: owa, ecp, ews, activesync, other (case-insensitive)';

    my @k = verdict_kinds($ng);
    my ($foo) = grep { $_->[0] eq '/foo' } @k;
    is $foo && $foo->[1], 'empty', 'verdict: empty for /foo (not judged)';

    no_ejection($ng, 'variables');
    $ng->stop;
}

done_testing;
