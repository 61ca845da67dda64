#!/usr/bin/perl

# Answers that cannot be failures pass through untouched: scripts, big
# pages, gzip'd and chunked pages reach the client byte for byte.  The
# scan window and the hold are honoured: a marker past the scan window is
# not looked at; a marker past the hold but inside the window is found as
# the body streams (too late to retry, but counted).  The built-in rules'
# own windows: the errorFE class name counts in the first 4 KB only, and a
# healthy page is let go there; the "More details" block counts anywhere
# in the window, in answers that name an OWA error.  HEAD and non-HTML
# answers are judged by their header alone.

# The users here make one request each and never opened OWA before, so
# the upstreams say voters=any: these tests are about what is found in
# answers, t/19-who-votes.t about who may vote.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);

my $EXCH2 = $farm->server('EXCH2')->addr;
my $MARKER = '<!-- OwaPage = ASP.auth_errorfe_aspx -->';
my $DETAILS = '<pre id="diagnosticDiv">X-OWA-Error: '
            . 'Microsoft.Exchange.Diagnostics.ExAssertException</pre>';
my $OWA_ERROR = { 'X-OWA-Error' => 'Microsoft.Exchange.Diagnostics.ExAssertException' };

sub subst_vars {
    my ($s, $name) = @_;
    my $vars = $farm->server($name)->vars;
    $s =~ s/\{\{([A-Z0-9_]+)\}\}/exists $vars->{$1} ? $vars->{$1} : "{{$1}}"/ge;
    return $s;
}

# A capture's body as server $name sends it (placeholders filled in).
sub body_as_sent { subst_vars(capture($_[0])->body, $_[1]) }

# The server that answered: its X-FEServer, else the one nginx logged.
sub answered_by {
    my ($r, $v) = @_;
    return $r->header('X-FEServer') // $farm->name_of($v->{upstream_addr});
}

# ---------------------------------------------------------------------
# 1. Healthy answers, byte for byte

{
    $farm->heal;
    $farm->clear_logs;
    for my $b ($farm->servers) {
        $b->prepend(
            { name => 'gzip-page', signed_in => 1, path => '^/owa/gzip/',
              capture => 'owa-signed-in', gzip => 1 },
            { name => 'chunked-page', signed_in => 1, path => '^/owa/chunked/',
              capture => 'owa-signed-in', chunked => 100 },
            { name => 'gzip-chunked-page', signed_in => 1, path => '^/owa/gzchunk/',
              capture => 'owa-signed-in', gzip => 1, chunked => 333 },
            { name => 'split-page', signed_in => 1, path => '^/owa/split/',
              capture => 'owa-signed-in', split => [ 150, 700, 4000, 9000 ] },
        );
    }

    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 8;');
    $ng->start;

    my @cases = (
        { name => 'OWA script (45 KB)', capture => 'owa-script',
          path => '/owa/prem/15.1.2507.6/scripts/boot.worker.js' },
        { name => 'signed-in page (25 KB)', capture => 'owa-signed-in',
          path => '/owa/' },
        { name => 'gzip-encoded page', capture => 'owa-signed-in',
          path => '/owa/gzip/', gzip => 1 },
        { name => 'chunked page (100-byte chunks)', capture => 'owa-signed-in',
          path => '/owa/chunked/' },
        { name => 'gzip-encoded page in 333-byte chunks', capture => 'owa-signed-in',
          path => '/owa/gzchunk/', gzip => 1 },
        { name => 'page written in pieces', capture => 'owa-signed-in',
          path => '/owa/split/' },
    );

    my $n = 0;
    for my $c (@cases) {
        my (@r, %by);
        for my $i (1 .. 3) {
            my $r = $ng->request(GET => $c->{path}, signed_in => "pass$i",
                                 accept_encoding => 'gzip');
            $n++;
            my @v = EH::Front::wait_verdicts($ng, $n);
            push @r, [ $r, $v[-1] ];
        }
        my $good = 0;
        my @why;
        for (@r) {
            my ($r, $v) = @$_;
            my $name = answered_by($r, $v) // '?';
            $by{$name}++;
            my $want = body_as_sent($c->{capture}, $name);
            if ($r->{error} || $r->{status} != 200) {
                push @why, $r->{error} // $r->summary;
            }
            elsif ($c->{gzip}) {
                my $enc = $r->header('Content-Encoding') // '';
                if ($enc ne 'gzip') { push @why, "Content-Encoding '$enc'" }
                elsif ($r->{body_encoded} ne EH::Capture::gzip_bytes($want)) {
                    push @why, "gzip bytes differ";
                }
                elsif ($r->{body} ne $want) { push @why, "decoded body differs" }
                else { $good++ }
            }
            elsif ($r->{body} ne $want) {
                push @why, sprintf "body differs (%d bytes, want %d)",
                    length $r->{body}, length $want;
            }
            else { $good++ }
        }
        is $good, 3, "$c->{name}: the client gets the backend's bytes"
            or diag explain \@why;
        is scalar(keys %by), 3, "$c->{name}: from each of the three servers";
    }

    my @v = EH::Front::wait_verdicts($ng, $n);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x $n ],
        'healthy answers: verdict healthy';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'healthy answers: no ejection';

    $ng->stop;
}

# ---------------------------------------------------------------------
# 2. A big healthy page with an errorFE marker past the scan window

for my $gz (0, 1) {
    my $what = $gz ? 'marker past the scan window, gzip' : 'marker past the scan window';
    my $body = ('x' x 20000) . $MARKER;

    $farm->heal;
    $farm->clear_logs;
    for my $b ($farm->servers) {
        $b->prepend({ signed_in => 1, path => '^/owa/$', body => $body,
                      ($gz ? (gzip => 1) : ()) });
    }

    my $ng = EH::Front::nginx($farm, location => 'exchange_health_scan 8k;');
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => "big$_",
                               accept_encoding => 'gzip') } 1 .. 12;
    is scalar(grep { !$_->{error} && $_->{status} == 200 && $_->{body} eq $body } @r), 12,
        "$what: every client gets the whole page";
    is scalar(grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r), 4,
        "$what: EXCH2's four answers among them";
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ],
        "$what: not judged a failure";
    is scalar(EH::Front::changes($ng, 'ejected')), 0, "$what: no ejection";

    $ng->stop;
}

# ---------------------------------------------------------------------
# 3. An errorFE page whose marker is past the hold, inside the scan
#    window: found as it streams, too late to retry, but counted.  The
#    "More details" block of a page that names an OWA error, 10 KB in
#    (21 KB in the real page).

{
    my $body = ('x' x 10240) . $DETAILS . "\r\n</html>\r\n";

    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/$', body => $body,
                                      headers => $OWA_ERROR });

    my $ng = EH::Front::nginx($farm,
                              upstream => 'exchange_health_eject time=60s voters=any;',
                              location => 'exchange_health_hold 1k;');
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => "late$_") } 1 .. 9;
    my @from2 = grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r;
    is scalar(@from2), 3, 'marker past the hold: the clients got EXCH2\'s 3 answers';
    is scalar(grep { $_->{status} == 200 && $_->{body} eq $body } @from2), 3,
        'marker past the hold: the failure page reached them whole (not retried)';

    my @v = EH::Front::wait_verdicts($ng, 9);
    my @v2 = grep { $_->{upstream_addr} eq $EXCH2 } @v;
    is_deeply [ map { $_->{verdict} } @v2 ], [ ('failure') x 3 ],
        'marker past the hold: verdict failure';
    is scalar(grep { $_->{upstream_addr} =~ /,/ } @v), 0,
        'marker past the hold: no request went to a second server';

    $ng->wait_for_error_log(qr/ejected for/);
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'marker past the hold: one ejection';
    is $farm->name_of($ej[0]{addr}), 'EXCH2', 'marker past the hold: EXCH2 ejected';
    is $ej[0]{rule}, 'errorfe-details', 'marker past the hold: rule errorfe-details';
    like $ej[0]{line}, qr/after 3 failures/, 'marker past the hold: after 3 failures';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "later$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/'), 0,
        'marker past the hold: EXCH2 gets no more OWA requests';

    $ng->stop;
}

# ---------------------------------------------------------------------
# 3b. The built-in rules' own windows: the class name past errorfe-page's
#     4 KB, and the details block in an answer that names no OWA error,
#     are not failures

for my $c (
    { name => 'class name 5 KB in', body => ('x' x 5000) . $MARKER },
    { name => 'details block without X-OWA-Error', body => ('x' x 100) . $DETAILS },
) {
    my $what = "not looked for: $c->{name}";
    my $body = $c->{body} . "\r\n</html>\r\n";

    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/$', body => $body });

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my @r = map { $ng->request(GET => '/owa/', signed_in => "own$_") } 1 .. 12;
    my @from2 = grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r;
    is scalar(grep { !$_->{error} && $_->{status} == 200 && $_->{body} eq $body } @from2), 4,
        "$what: EXCH2's four pages reach the clients whole";
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ], "$what: healthy";
    is scalar(EH::Front::changes($ng, 'ejected')), 0, "$what: no ejection";

    $ng->stop;
}

# ---------------------------------------------------------------------
# 3c. A healthy page is let go at errorfe-page's 4 KB: with a hold and a
#     buffer larger than that, the header does not wait for the rest.
#     The back end sends the header and some 6 KB of body, then the rest
#     3 s later.

{
    my $body = ('<p>mail</p>' x 1000) . "\r\n</html>\r\n";

    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend({ signed_in => 1, path => '^/owa/$', body => $body,
                                      split => [ 6500 ], split_pause => 3 });

    my $ng = EH::Front::nginx($farm,
        location => "exchange_health_hold 16k 10s;\nproxy_buffer_size 32k;\n"
                  . "proxy_buffers 4 32k;\nproxy_buffering off;");
    $ng->start;

    my ($r2, $t2);
    for my $i (1 .. 3) {
        my $t0 = time;
        my $r = $ng->request(GET => '/owa/', signed_in => "early$i", timeout => 10);
        ($r2, $t2) = ($r, $t0) if ($r->header('X-FEServer') // '') eq 'EXCH2';
    }
    ok $r2 && $r2->{body} eq $body, 'let go at 4 KB: EXCH2\'s page arrives whole';
    ok $r2 && $r2->{elapsed} >= 2.5, 'let go at 4 KB: after the back end\'s pause';
    ok $r2 && $r2->{first_byte} - $t2 < 2,
        'let go at 4 KB: its header came before the pause ended';
    my @v = EH::Front::wait_verdicts($ng, 3);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 3 ], 'let go at 4 KB: healthy';

    $ng->stop;
}

# ---------------------------------------------------------------------
# 4. HEAD to a server that answers the errorFE page

{
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend(
        { signed_in => 1, path => '^/owa/$', capture => 'errorfe-page-en' });

    my $ng = EH::Front::nginx($farm, upstream => 'keepalive 8;');
    $ng->start;

    my $len = length body_as_sent('errorfe-page-en', 'EXCH2');
    my @r = map { $ng->request(HEAD => '/owa/', signed_in => "head$_") } 1 .. 12;
    is scalar(grep { !$_->{error} && $_->{status} == 200 && $_->{body} eq '' } @r), 12,
        'HEAD: every answer is headers only';
    my @from2 = grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r;
    is scalar(@from2), 4, 'HEAD: EXCH2 answered its four';
    is scalar(grep { ($_->header('Content-Length') // -1) == $len } @from2), 4,
        'HEAD: with the page\'s Content-Length';
    is $farm->server('EXCH2')->hits(method => 'HEAD'), 4,
        'HEAD: sent to EXCH2 as HEAD';

    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ],
        'HEAD: judged by its header alone (healthy)';
    is scalar(EH::Front::changes($ng, 'ejected')), 0, 'HEAD: no ejection';

    # the kept-alive upstream connections are still in step
    my @h = map { $ng->request(GET => '/owa/healthcheck.htm') } 1 .. 6;
    is scalar(grep {
        !$_->{error} && $_->{status} == 200
        && $_->{body} eq '200 OK<br/>' . $farm->server($_->header('X-FEServer'))->fqdn
    } @h), 6, 'HEAD: later requests on the same upstream connections are fine';

    $ng->stop;
}

# ---------------------------------------------------------------------
# 5. Non-HTML answers with the marker text are not judged by body rules

for my $c (
    { name => 'JSON', path => '/owa/service.svc?action=GetItem',
      match => '^/owa/service\.svc', type => 'application/json; charset=utf-8',
      body => '{"Body":{"Html":"' . $MARKER . ' <pre id=\"diagnosticDiv\">'
              . 'Server Error in \'/owa\' Application"}}' },
    { name => 'image', path => '/owa/attachment.ashx?id=1',
      match => '^/owa/attachment\.ashx', type => 'image/png',
      body => "\x89PNG\r\n\x1a\n\0\0\0\rIHDR" . $MARKER . 'id="diagnosticDiv"'
              . join('', map { chr } 0 .. 255) },
) {
    $farm->heal;
    $farm->clear_logs;
    $farm->server('EXCH2')->prepend(
        { signed_in => 1, path => $c->{match}, body => $c->{body},
          headers => { 'Content-Type' => $c->{type} } });

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    my @r = map { $ng->request(GET => $c->{path}, signed_in => "nonhtml$_") } 1 .. 12;
    my @from2 = grep { ($_->header('X-FEServer') // '') eq 'EXCH2' } @r;
    is scalar(@from2), 4, "$c->{name} with the marker: EXCH2 answered four";
    is scalar(grep { $_->{status} == 200 && $_->{body} eq $c->{body} } @from2), 4,
        "$c->{name} with the marker: passed through unchanged";
    my @v = EH::Front::wait_verdicts($ng, 12);
    is_deeply [ map { $_->{verdict} } @v ], [ ('healthy') x 12 ],
        "$c->{name} with the marker: verdict healthy";
    is scalar(EH::Front::changes($ng, 'ejected')), 0,
        "$c->{name} with the marker: no ejection";

    $ng->stop;
}

done_testing;
