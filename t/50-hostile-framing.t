#!/usr/bin/perl

# Hostile back ends: truncated answers, absurd chunked framing, framing HTTP
# forbids, an errorFE redirect closed after its header.
# The harness and what every case checks: t/lib/EH/Hostile.pm.
# EH_ONLY=regex runs only the cases whose name matches.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Hostile;
use Compress::Raw::Zlib;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

# ------------------------------------------------ truncated answers
#
# The errorFE page names itself at body byte 176.  Cut before that, the
# module holds the header for the body and the server's close is nginx's
# "upstream prematurely closed connection": a connection error
# (upstream-error), retried by nginx.  Cut after it, the marker is found
# while the header is held: rule errorfe-page, retried by the module.

{
    my $marker = 'ASP.auth_errorfe_aspx';
    for my $enc ([identity => ()], [gzip => (gzip => 1)],
                 [chunked => (chunked => 512)],
                 ['gzip, chunked' => (gzip => 1, chunked => 512)])
    {
        my ($label, %opt) = @$enc;
        my $bytes = wire('errorfe-page-en', %opt);
        my $h = head_len($bytes);
        my $body = length($bytes) - $h;
        my $at = index($bytes, $marker) - $h;    # identity only
        my @cuts = $opt{chunked}
            ? ([ 'in the middle of the first chunk, before the marker',
                 $h + ($opt{gzip} ? 15 : 100), 'upstream-error' ],
               [ 'in the middle of a later chunk, after the marker',
                 $h + ($opt{gzip} ? int($body / 2) : 700), 'errorfe-page' ])
            : ([ 'in the middle of the header', $h - 40, 'upstream-error' ],
               [ 'right after the header', $h, 'upstream-error' ],
               [ 'in the body before the marker (Content-Length larger than sent)',
                 $h + ($opt{gzip} ? 10 : $at - 50), 'upstream-error' ],
               [ 'in the body after the marker (Content-Length larger than sent)',
                 $h + ($opt{gzip} ? int($body / 2) : 2000), 'errorfe-page' ]);
        for my $cut (@cuts) {
            my ($where, $len, $rule) = @$cut;
            hostile(name => "errorFE page ($label) cut $where",
                    route => { capture => 'errorfe-page-en', %opt,
                               truncate => $len },
                    clients => 'all-200', eject => $rule,
                    verdicts => { rescued => 3, healthy => 6 });
        }
    }
}

# A healthy page cut in the middle of its body, past the hold: its header
# has gone to the client, which gets a truncated body (nginx's own
# behaviour); nothing is counted, as max_fails counts nothing.
{
    my $bytes = wire('owa-signed-in');
    hostile(name => 'healthy page cut in the middle of its body, past the hold',
            route => { capture => 'owa-signed-in', truncate => head_len($bytes) + 15000 },
            clients => sub {
                my @cut = grep { fe($_) eq 'EXCH2' } @_;
                is scalar(@cut), 3, 'EXCH2 answered 3';
                like outcome($_), qr/^200 \(body truncated\)$/,
                    'EXCH2: 200 with a truncated body' for @cut;
            },
            eject => undef, plain => 1);
}

# ------------------------------------------------ absurd chunked framing
#
# The header is fine, the framing is not.  nginx finds it out only once
# the header has gone to the client ("upstream sent invalid chunked
# response"): the client loses the request, as without the module.

for my $size ('ffffffffffffffff', '-10', 'zz', '0x1a', '1a1a1a1a1a1a1a1a1a1a') {
    hostile(name => "chunk size '$size'",
            route => { raw => response(
                add => [['Transfer-Encoding', 'chunked']],
                body => "$size\r\n<html><body>hello</body></html>\r\n0\r\n\r\n") },
            clients => sub {
                my @e2 = grep { outcome($_) ne '200' } @_;
                is scalar(@e2), 3, '3 clients (EXCH2) lose their request';
            },
            eject => undef, plain => 1,
            check => sub {
                my ($ng) = @_;
                ok scalar($ng->grep_error_log(qr/upstream sent invalid chunked response/)),
                    'nginx: upstream sent invalid chunked response';
            });
}

# A size nginx accepts (1 TB), then silence.  The scanner takes it too
# and holds the header for the data; none comes, and the hold's time
# (500 ms) ends the wait: the client gets the header, as without the
# module, and waits for the body until proxy_read_timeout (3s).  The
# stall is EXCH2's failure all the same, too late to be retried.
hostile(name => 'chunk size ffffffffff (1 TB), then silence',
        route => { raw => response(
            add => [['Transfer-Encoding', 'chunked']],
            body => "ffffffffff\r\n<html><body>hello</body></html>\r\n") },
        clients => sub {
            is join(' ', sort map { outcome($_) . '/' . (fe($_) =~ s/EXCH[13]/other/r) } @_),
               join(' ', sort(('200/other') x 6,
                              ('200 (incomplete chunked body)/EXCH2') x 3)),
               'EXCH1 and EXCH3 answer; EXCH2\'s header goes on, its body cut';
            my @slow = grep { $_->{elapsed} > 1 } @_;
            is scalar(@slow), 3, '3 of them late';
            ok !grep({ $_->{elapsed} < 2.8 } @slow), "after nginx's read timeout (3s)";
        },
        eject => 'upstream-timeout',
        verdicts => { 'upstream-error' => 3, healthy => 6 },
        bound => 5,
        check => sub {
            my ($ng) = @_;
            is scalar($ng->grep_error_log(qr/upstream timed out .* while reading upstream/)), 3,
                'nginx: upstream timed out while reading the body, 3 times';
        });

# Chunk extensions of many KB: nginx skips them.  Before the errorFE
# page's first bytes they fill the hold buffer, so the header goes on
# and the marker is found as the body streams: a failure the client sees,
# counted from 3 users, which ejects.
{
    my $ext = ';' . join ';', map { "ext$_=" . ('x' x 100) } 1 .. 80;   # 8 KB
    my $chunked_ext = sub {
        my ($body) = @_;
        my $out = sprintf('%x', 512) . "$ext\r\n" . substr($body, 0, 512) . "\r\n";
        $out .= EH::Capture::chunk_bytes(substr($body, 512), 1024);
        return $out;
    };
    my $ok = wire('owa-signed-in');
    my $fe = wire('errorfe-page-en');
    hostile(name => '8 KB chunk extension, healthy page',
            route => { raw => response(add => [['Transfer-Encoding', 'chunked']],
                                       body => $chunked_ext->(substr $ok, head_len($ok))) },
            clients => 'all-200', eject => undef, verdicts => { healthy => 9 });
    hostile(name => '8 KB chunk extension before the errorFE page',
            route => { raw => response(add => [['Transfer-Encoding', 'chunked']],
                                       body => $chunked_ext->(substr $fe, head_len($fe))) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { failure => 3, healthy => 6 });
}

# ------------------------------------------------ framing HTTP forbids

{
    my $fe = wire('errorfe-page-en');
    my $ok = wire('owa-signed-in');
    my $fe_body = substr $fe, head_len($fe);
    my $ok_body = substr $ok, head_len($ok);
    my $fe_h = [ ['Content-Type', 'text/html; charset=utf-8'], ['X-FEServer', 'EXCH2'],
                 ['X-OWA-Error', 'Microsoft.Exchange.Diagnostics.ExAssertException'] ];

    hostile(name => 'errorFE page, HTTP/1.0, no length, closed by the server',
            route => { raw => response(status => 'HTTP/1.0 200 OK', headers => $fe_h,
                                       body => $fe_body, no_length => 1) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });

    hostile(name => 'healthy page, HTTP/1.0, no length, closed by the server',
            route => { raw => response(status => 'HTTP/1.0 200 OK', body => $ok_body,
                                       no_length => 1) },
            clients => sub {
                is scalar(grep { fe($_) eq 'EXCH2' && $_->{body} eq $ok_body } @_), 3,
                    "EXCH2's 3 pages reach the client whole";
                is scalar(grep { ($_->{status} // 0) == 200 && !$_->{error} } @_), 9,
                    'every client gets a whole 200';
            },
            eject => undef, verdicts => { healthy => 9 });

    hostile(name => '100 Continue before an errorFE redirect',
            route => { raw => "HTTP/1.1 100 Continue\r\n\r\n" . wire('errorfe-redirect') },
            clients => sub {
                my @e2 = grep { outcome($_) ne '200' } @_;
                is scalar(@e2), 3, '3 clients (EXCH2) do not get a final answer';
                cmp_ok $_->{elapsed}, '>', 2.5, "nginx's read timeout (3s) ended it"
                    for @e2;
            },
            bound => 5, eject => undef, plain => 1);

    for my $st ('204 No Content', '304 Not Modified') {
        hostile(name => "$st with an errorFE page for body",
                front => { upstream => 'keepalive 8;' },
                route => { raw => response(status => "HTTP/1.1 $st", headers => $fe_h,
                                           body => $fe_body) },
                clients => sub {
                    my ($code) = $st =~ /^(\d+)/;
                    is join(' ', map { $_->{status} // 'none' } @_),
                        "200 $code 200 200 $code 200 200 $code 200",
                        "EXCH2's $code reaches the client, the next ones are not poisoned";
                    ok !grep({ $_->{error} } @_), 'no client error';
                },
                eject => undef, verdicts => { healthy => 9 });
    }

    hostile(name => 'HEAD answered with a body',
            method => 'HEAD',
            front => { upstream => 'keepalive 8;' },
            route => { method => 'HEAD', raw => $fe },
            clients => sub {
                is join(' ', map { $_->{status} // 'none' } @_), join(' ', (200) x 9),
                    'every HEAD gets 200';
                ok !grep({ $_->{error} || length $_->{raw_body} } @_), 'without a body';
            },
            eject => undef, verdicts => { healthy => 9 },
            check => sub {
                my ($ng) = @_;
                # the same keep-alive connections then carry GETs
                my @r = map { $ng->request(GET => '/owa/', signed_in => 'g' . ++$USER) } 1 .. 6;
                is join(' ', map { outcome($_) } @r), join(' ', (200) x 6),
                    'GETs after them are not poisoned by the stray bodies';
                ok !grep({ $_->{body} =~ /auth_errorfe/ } @r), 'no stray errorFE bytes';
            });
}

# Framing that contradicts itself: nginx 1.22 lets one framing win (or
# reads to the close); the marker comes with the header all the same and
# the module retries.  Later nginx (1.26 and 1.31 seen) refuses each of
# these itself: the answer is its invalid header (a 502 unless
# proxy_next_upstream lists invalid_header), which the module counts
# against the server as nginx's own failure (upstream-error).
{
    my $strict = nginx_version(1, 23);
    my %refused = map { $_ => 1 } 'Content-Length and chunked',
                  'two Content-Lengths', 'Content-Length -5',
                  'Content-Length 2^70', 'Transfer-Encoding gzip, chunked';
    my $fe = wire('errorfe-page-en');
    my $fe_body = substr $fe, head_len($fe);
    my $fe_h = [ ['Content-Type', 'text/html; charset=utf-8'], ['X-FEServer', 'EXCH2'] ];
    my %forms = (
        'Content-Length and chunked' => [ ['Content-Length', 300],
                                          ['Transfer-Encoding', 'chunked'] ],
        'two Content-Lengths'        => [ ['Content-Length', 300],
                                          ['Content-Length', length $fe_body] ],
        'Content-Length -5'          => [ ['Content-Length', -5] ],
        'Content-Length 2^70'        => [ ['Content-Length', '1180591620717411303424'] ],
        'Transfer-Encoding gzip, chunked' => [ ['Transfer-Encoding', 'gzip, chunked'] ],
    );
    for my $f (sort keys %forms) {
        my $body = $f =~ /chunked/ ? EH::Capture::chunk_bytes($fe_body, 1000) : $fe_body;
        my %expect = ($strict && $refused{$f})
            ? (clients => sub {
                   is join(' ', sort map { outcome($_) } grep { ($_->{status} // 0) != 200 } @_),
                       '502 502 502', "errorFE page with $f: nginx's 502 for EXCH2's 3, whole 200s for the rest";
               },
               eject => 'upstream-error',
               verdicts => { 'upstream-error' => 3, healthy => 6 })
            : (clients => 'all-200', eject => 'errorfe-page',
               verdicts => { rescued => 3, healthy => 6 });
        hostile(name => "errorFE page with $f",
                route => { raw => response(headers => [ @$fe_h, @{ $forms{$f} } ],
                                           body => $body), keepalive => 0 },
                %expect);
    }

    # No status line at all: nginx takes it for HTTP/0.9 and the whole
    # answer for a body, with no header the module could judge.
    hostile(name => 'errorFE page with no status line (HTTP/0.9)',
            route => { raw => $fe_body, keepalive => 0 },
            clients => sub {
                is scalar(grep { ($_->{error} // '') =~ /^bad status line/ } @_), 3,
                    '3 clients get the bytes without a status line, as nginx passes them';
            },
            eject => undef, plain => 1);

    for my $st ('HTTP/1.1 999 Strange', 'HTTP/1.1 500', 'HTTP/1.1 000 Zero') {
        hostile(name => "status line '$st' with X-FEServer",
                route => { raw => wire('owa-service-500') =~ s{\AHTTP/1\.1 500[^\r]*}{$st}r },
                clients => sub {
                    ok !grep({ !defined $_->{status} && ($_->{error} // '') eq 'timeout' } @_),
                        'every client gets an answer';
                },
                eject => $st =~ / 500$/ ? 'fe500' : undef);
    }
}

# healthcheck.htm names the server's FQDN ("200 OK<br/>FQDN"): a hostile
# one is cut at its first byte that is not printable ASCII (no FQDN has
# one), and what is left is stored and escaped like the name.
for my $fqdn ('<b>x</b>"\'&' . ("\x01\x1b[31m\xff\xc3" x 3), 'f' x 5000) {
    my $show = $fqdn =~ /^f+$/ ? 'kilobytes' : 'markup, control bytes, bad UTF-8';
    hostile(name => "healthcheck.htm FQDN with $show",
            path => '/owa/healthcheck.htm', request => { signed_in => undef },
            front => { location => 'proxy_buffer_size 16k; proxy_buffers 8 16k;' },
            route => { path => '^/owa/healthcheck\\.htm$', signed_in => undef,
                       raw => response(body => "200 OK<br/>$fqdn") },
            clients => 'all-200', eject => undef, verdicts => { healthy => 9 },
            check => sub {
                my ($ng, $r, $v, $j, $html) = @_;
                my ($printable) = $fqdn =~ /\A([\x21-\x7e]*)/;
                is server_of($j, 'EXCH2')->{fqdn}, shown($printable, 96),
                    'JSON: the FQDN up to its first unprintable byte, escaped';
                # the page has <b> of its own: the FQDN's must not be there
                unlike $html, qr/<b>x<\/b>|[\x00-\x08\x0b-\x1f\x7f]/,
                    'HTML: no markup of the FQDN, no control bytes';
                ok utf8::decode(my $copy = $html), 'HTML: valid UTF-8';
            });
}

# ------------------------------------------------ errorFE redirect, closed
#
# The redirect is judged by its header: the close after it changes
# nothing with retry on.  With retry off its header goes to the client,
# then the body is cut: the client sees a 302 with a truncated body, the
# failure counts (3 users) and ejects.

{
    my $redir = wire('errorfe-redirect');
    hostile(name => 'errorFE redirect, closed right after the header',
            route => { capture => 'errorfe-redirect', truncate => head_len($redir) },
            clients => 'all-200', eject => 'errorfe-redirect',
            verdicts => { rescued => 3, healthy => 6 });
    hostile(name => 'errorFE redirect, closed right after the header, retry off',
            front => { location => 'exchange_health_retry off;' },
            route => { capture => 'errorfe-redirect', truncate => head_len($redir) },
            clients => sub {
                is join(' ', map { outcome($_) } @_),
                    join(' ', ('200', '302 (body truncated)', '200') x 3),
                    'the 302 reaches the client, its body cut';
            },
            eject => 'errorfe-redirect', verdicts => { failure => 3, healthy => 6 });
    my $page = wire('errorfe-page-en');
    hostile(name => 'errorFE page, closed right after the header while held',
            route => { capture => 'errorfe-page-en', truncate => head_len($page) },
            clients => 'all-200', eject => 'upstream-error',
            verdicts => { rescued => 3, healthy => 6 });
}

done_testing;
