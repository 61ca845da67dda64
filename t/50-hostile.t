#!/usr/bin/perl

# Hostile back ends.  A 3-server HTTPS farm where EXCH2 answers signed-in
# GET /owa/ with broken or malicious bytes: truncated answers, bad
# compression and decompression bombs, absurd chunked framing, huge and
# repeated headers, markup and control bytes in X-FEServer, a name that
# changes on every answer, bytes trickled forever, framing HTTP forbids.
#
# Every case checks that nginx does not crash (the error-log check of
# EH::Nginx: "exited on signal", [alert], [emerg]), that clients get an
# answer in bounded time (where one request waits by nginx's own design,
# that nginx's own timeout answered), that EXCH1 and EXCH3 keep serving,
# that the status page still renders and parses, and what the module
# concluded (ejected or not, by which rule; the verdicts).
#
# The module's defaults (retry on, hold 4k 500ms, scan 32k) unless a case
# says otherwise.  Servers have max_fails=0: nginx's default max_fails=1
# would take EXCH2 out after its first error, before the module has seen
# the three failures it ejects after.  proxy_read_timeout is 3s so that a
# hang shows as nginx's timeout, not as a test that never ends.
#
# EH_ONLY=regex runs only the cases whose name matches.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Compress::Raw::Zlib;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

my $farm = farm(tls => 1);
my $E2 = $farm->server('EXCH2');
my %VARS = (FESERVER => 'EXCH2', FQDN => 'exch2.contoso.local',
            BESERVER => 'EXCH2');
my %NO_MAX_FAILS = map { $_ => 'max_fails=0' } $farm->names;
my $STATUS = 'location = /status { exchange_health_status; }';
my $USER = 0;

# ------------------------------------------------------------ helpers

# EH_ONLY=regex runs only the cases whose name matches.
sub wanted { !$ENV{EH_ONLY} || $_[0] =~ /$ENV{EH_ONLY}/ }

# A capture as EXCH2 sends it.
sub wire {
    my ($name, %o) = @_;
    return capture($name)->bytes(vars => \%VARS, %o);
}

sub head_len {
    my $i = index $_[0], "\r\n\r\n";
    die "no end of header" if $i < 0;
    return $i + 4;
}

# A response built by hand: status line, [[Name, value], ...], body.
# Content-Length is added unless the headers frame the body themselves
# or no_length => 1.
sub response {
    my (%o) = @_;
    my @h = @{ $o{headers} // [ ['Content-Type', 'text/html; charset=utf-8'],
                                 ['Server', 'Microsoft-IIS/10.0'],
                                 ['X-FEServer', 'EXCH2'] ] };
    push @h, @{ $o{add} || [] };
    my $body = $o{body} // '';
    push @h, ['Content-Length', length $body]
        unless $o{no_length}
            || grep { $_->[0] =~ /^(?:content-length|transfer-encoding)$/i } @h;
    return join('', ($o{status} // 'HTTP/1.1 200 OK') . "\r\n",
                map({ "$_->[0]: $_->[1]\r\n" } @h), "\r\n") . $body;
}

sub raw_deflate {
    my ($data) = @_;
    my ($d) = Compress::Raw::Zlib::Deflate->new(-WindowBits => -MAX_WBITS,
                                                -AppendOutput => 1);
    my $out = '';
    $d->deflate($data, $out) == Z_OK or die 'deflate';
    $d->flush($out) == Z_OK or die 'deflate flush';
    return $out;
}

# Seeded junk (a xorshift of its own, so a failure can be replayed and
# nothing else's rand() is disturbed).
sub junk {
    my ($n, $seed) = @_;
    my $x = 2463534242 + ($seed // 42);
    my $out = '';
    for (1 .. $n) {
        $x ^= ($x << 13) & 0xffffffff;
        $x ^= $x >> 17;
        $x ^= ($x << 5) & 0xffffffff;
        $out .= chr($x & 0xff);
    }
    return $out;
}

# The front end: EH::Front's configuration with the status page,
# max_fails=0 and proxy_read_timeout 3s (read_timeout => to change it).
# Its users make one request each and never opened OWA before: the
# upstream says voters=any, as these tests are about what is found in
# answers; t/19-who-votes.t is about who votes.
sub front {
    my (%o) = @_;
    my $rt = delete $o{read_timeout} // '3s';
    my $location = join "\n        ", "proxy_read_timeout $rt;",
        grep { defined && length } delete $o{location};
    my $server = join "\n    ", $STATUS, grep { defined && length } delete $o{server};
    my $upstream = join "\n    ", 'exchange_health_eject voters=any;',
        grep { defined && length } delete $o{upstream};
    my $ng = EH::Front::nginx($farm,
        params => { %NO_MAX_FAILS, %{ delete $o{params} || {} } },
        server => $server, location => $location, upstream => $upstream, %o);
    $ng->start;
    return $ng;
}

# What a client saw, in a few words: "200", "502", "none (timeout)",
# "200 (body truncated)".
sub outcome {
    my ($r) = @_;
    my $s = $r->{status} // 'none';
    if (my $e = $r->{error}) {
        $e =~ s/:.*//s;
        $s .= " ($e)";
    }
    return $s;
}

sub fe { $_[0]->header('X-FEServer') // '-' }

# The status page still renders (HTML) and parses (JSON, strict UTF-8);
# returns the JSON.
sub status_ok {
    my ($ng, $name) = @_;
    my $h = $ng->request(GET => '/status', timeout => 5);
    ok(($h->{status} // 0) == 200 && ($h->{body} // '') =~ m{</html>\s*\z},
       "$name: the status page renders") or diag outcome($h);
    my ($j, $r, $err) = EH::Front::status_json($ng);
    ok $j, "$name: the status page parses as JSON" or diag $err;
    $j //= {};
    is scalar(@{ $j->{upstreams}[0]{servers} || [] }), 3,
        "$name: it lists the 3 servers";
    return ($j, $h->{body} // '');
}

# A server's record on the status page (JSON).
sub server_of {
    my ($j, $name) = @_;
    my $addr = $farm->server($name)->addr;
    my ($s) = grep { $_->{address} eq $addr }
              @{ $j->{upstreams}[0]{servers} || [] };
    return $s || {};
}

# EXCH1 and EXCH3 keep serving: 6 more OWA requests (a path EXCH2 does
# not break), all answered promptly with 200, 2 or 3 by each.
sub farm_serves {
    my ($ng, $name) = @_;
    my (%by, @bad);
    my $max = 0;
    for (1 .. 6) {
        my $r = $ng->request(GET => '/owa/service.svc?action=GetFolder',
                             signed_in => 'h' . ++$USER, timeout => 5);
        push @bad, outcome($r) unless ($r->{status} // 0) == 200 && !$r->{error};
        $by{ fe($r) }++;
        $max = $r->{elapsed} if $r->{elapsed} > $max;
    }
    is "@bad", '', "$name: 6 more OWA requests all get 200";
    ok(($by{EXCH1} // 0) >= 2 && ($by{EXCH3} // 0) >= 2,
       "$name: EXCH1 and EXCH3 keep serving")
        or diag explain \%by;
    cmp_ok $max, '<', 2, "$name: promptly";
}

sub count_of { my %c; $c{$_}++ for @_; return \%c }

# Ejection lines and the rules that made them.
sub ejections {
    my ($ng) = @_;
    return map { $farm->name_of($_->{addr}) . ":$_->{rule}" }
           EH::Front::changes($ng, 'ejected');
}

sub log_tail {
    my ($ng) = @_;
    my @l = grep { !/\[notice\]/ } split /\n/, $ng->error_log;
    @l = @l[-25 .. -1] if @l > 25;
    return join "\n", map { s/([\x00-\x08\x0b-\x1f\x7f])/sprintf '\\x%02x', ord $1/ger } @l;
}

# One hostile case.
#   name, route => {...} | [routes] (path '^/owa/$', signed in, by default)
#   front => { front() options }, n => 9 requests, path, method, request => {}
#   timeout => client timeout (8), bound => every answer within (4 s)
#   client_timeout_ok => 1: a client may wait out its timeout
#   clients => 'all-200' | sub { my @r = @_; ... }
#   eject => 'rule' (EXCH2 once, by this rule) | undef (nobody ejected)
#   verdicts => { verdict => count, ... } of the n requests | sub
#   plain => 1: the client outcomes are the same with exchange_health_detect
#            off (the module is never worse than no module)
#   check => sub { my ($ng, \@responses, \@verdicts, $json, $html) = @_ }
#   allow => [ qr/.../ ]: error-log lines tolerated
sub hostile {
    my (%c) = @_;
    my $name = $c{name};
    return unless wanted($name);
    my $n = $c{n} // 9;

    my $run = sub {
        my (%extra) = @_;
        $farm->heal;
        $farm->clear_logs;
        $E2->prepend(map { +{ path => '^/owa/$', signed_in => 1, %$_ } }
                     ref $c{route} eq 'ARRAY' ? @{ $c{route} } : $c{route});
        my %f = %{ $c{front} || {} };
        $f{location} = join "\n        ", grep { defined && length }
            $f{location}, $extra{location};
        my $ng = front(%f);
        $ng->allow_in_error_log(@{ $c{allow} }) if $c{allow};
        my @r = map {
            $ng->request($c{method} // 'GET', $c{path} // '/owa/',
                         signed_in => 'u' . ++$USER,
                         accept_encoding => 'gzip, deflate',
                         timeout => $c{timeout} // 8, %{ $c{request} || {} })
        } 1 .. $n;
        return ($ng, @r);
    };

    subtest $name => sub {
        my ($ng, @r) = $run->();
        my @v = EH::Front::wait_verdicts($ng, $n);
        @v = @v[0 .. $n - 1] if @v > $n;

        my @waited = grep { ($_->{error} // '') eq 'timeout' } @r;
        is scalar(@waited), 0, "$name: no client waited out its timeout"
            unless $c{client_timeout_ok};
        my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @r;
        my $bound = $c{bound} // 4;
        cmp_ok $max, '<', $bound, "$name: every answer within ${bound}s";

        if (($c{clients} // '') eq 'all-200') {
            my @bad = grep { ($_->{status} // 0) != 200 || $_->{error} } @r;
            is join(', ', map { outcome($_) } @bad), '',
                "$name: every client gets a whole 200";
        } elsif (ref $c{clients}) {
            $c{clients}->(@r);
        }

        is join(' ', ejections($ng)), defined $c{eject} ? "EXCH2:$c{eject}" : '',
            "$name: " . (defined $c{eject} ? "EXCH2 ejected by rule $c{eject}"
                                           : 'nobody ejected');
        is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
            "$name: no farm-wide fault";

        if (ref $c{verdicts} eq 'HASH') {
            is_deeply count_of(map { $_->{verdict} } @v), $c{verdicts},
                "$name: verdicts"
                or diag join ' ', map { "$_->{status}/$_->{verdict}" } @v;
        } elsif (ref $c{verdicts}) {
            $c{verdicts}->(@v);
        }

        farm_serves($ng, $name);
        my ($j, $html) = status_ok($ng, $name);
        for my $s (qw(EXCH1 EXCH3)) {
            is server_of($j, $s)->{protocols}{owa}{state}, 'healthy',
                "$name: $s healthy for owa";
        }
        $c{check}->($ng, \@r, \@v, $j, $html) if $c{check};

        diag log_tail($ng) unless Test::More->builder->is_passing;
        $ng->stop;

        if ($c{plain}) {
            my ($plain, @p) = $run->(location => 'exchange_health_detect off;');
            is join(', ', map { outcome($_) } @r), join(', ', map { outcome($_) } @p),
                "$name: clients see what they see without the module";
            $plain->stop;
        }
    };
}

# ================================================================ cases

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

# ------------------------------------------------ compression

{
    my $html = capture('owa-signed-in')->bytes(vars => \%VARS);
    my $ok_body = substr $html, head_len($html);
    my $fe = wire('errorfe-page-en');
    my $fe_body = substr $fe, head_len($fe);
    my $fe_headers = [ ['Content-Type', 'text/html; charset=utf-8'],
                       ['Server', 'Microsoft-IIS/10.0'], ['X-FEServer', 'EXCH2'],
                       ['X-OWA-Error', 'Microsoft.Exchange.Diagnostics.ExAssertException'] ];

    my $random = junk(4096, 1);
    $random =~ s/^\x1f/\x20/;
    my $passes = sub {
        my ($expect) = @_;
        return sub {
            my @e2 = grep { fe($_) eq 'EXCH2' } @_;
            is scalar(@e2), 3, 'EXCH2 answered 3, passed through';
            is scalar(grep { ($_->{body_encoded} // '') eq $expect } @e2), 3,
                'the client got the bytes the server sent';
        };
    };

    hostile(name => 'random bytes labelled Content-Encoding: gzip',
            route => { raw => response(body => $random,
                                       add => [['Content-Encoding', 'gzip']]) },
            clients => $passes->($random),
            eject => undef, verdicts => { healthy => 9 }, plain => 1);

    my $bad_gzip = "\x1f\x8b\x08\x00\0\0\0\0\0\x03" . junk(4096, 2);
    hostile(name => 'a gzip header, then garbage',
            route => { raw => response(body => $bad_gzip,
                                       add => [['Content-Encoding', 'gzip']]) },
            clients => $passes->($bad_gzip),
            eject => undef, verdicts => { healthy => 9 }, plain => 1);

    my $gz_ok = EH::Capture::gzip_bytes($ok_body);
    my $short = substr $gz_ok, 0, int(length($gz_ok) * 0.6);
    hostile(name => 'healthy page, gzip that ends early',
            route => { raw => response(body => $short,
                                       add => [['Content-Encoding', 'gzip']]) },
            clients => $passes->($short),
            eject => undef, verdicts => { healthy => 9 }, plain => 1);

    my $gz_fe = EH::Capture::gzip_bytes($fe_body);
    hostile(name => 'errorFE page, gzip that ends early',
            route => { raw => response(headers => $fe_headers,
                                       body => substr($gz_fe, 0, int(length($gz_fe) * 0.6)),
                                       add => [['Content-Encoding', 'gzip']]) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });

    hostile(name => 'errorFE page, "deflate" that is raw deflate',
            route => { raw => response(headers => $fe_headers,
                                       body => raw_deflate($fe_body),
                                       add => [['Content-Encoding', 'deflate']]) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });

    my $rd_ok = raw_deflate($ok_body);
    hostile(name => 'healthy page, "deflate" that is raw deflate',
            route => { raw => response(body => $rd_ok,
                                       add => [['Content-Encoding', 'deflate']]) },
            clients => $passes->($rd_ok),
            eject => undef, verdicts => { healthy => 9 });

    # Raw deflate is told from zlib by the body's first two bytes; they
    # may come apart: 1-byte chunks, or a read that ends after one byte.
    my $rd_fe = raw_deflate($fe_body);
    hostile(name => 'errorFE page, raw deflate in 1-byte chunks',
            route => { raw => response(headers => $fe_headers,
                                       add => [['Content-Encoding', 'deflate'],
                                               ['Transfer-Encoding', 'chunked']],
                                       body => EH::Capture::chunk_bytes($rd_fe, 1)) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });
    my $rd_resp = response(headers => $fe_headers, body => $rd_fe,
                           add => [['Content-Encoding', 'deflate']]);
    hostile(name => 'errorFE page, raw deflate, its first byte alone in a read',
            route => { raw => $rd_resp, split => [ head_len($rd_resp) + 1 ],
                       split_pause => 0.1 },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });

    # Encodings the scanner cannot read: judged by the header alone, passed
    # on untouched.
    for my $enc (['br', junk(3000, 3)], ['gzip, gzip', EH::Capture::gzip_bytes($gz_fe)]) {
        my ($name, $body) = @$enc;
        hostile(name => "errorFE page, Content-Encoding: $name",
                route => { raw => response(headers => $fe_headers, body => $body,
                                           add => [['Content-Encoding', $name]]) },
                clients => $passes->($body),
                eject => undef, verdicts => { healthy => 9 }, plain => 1);
    }
}

# ------------------------------------------------ decompression bombs
#
# A few hundred KB of gzip that inflate to hundreds of MB: zeros, HTML
# without a marker, and HTML whose marker lies past the scan window.
# The scanner inflates into a small scratch buffer and stops at the scan
# window (32k): the worker's memory and CPU time must not notice.

sub gzip_bomb {
    my ($prefix, $unit, $mb) = @_;
    my ($d) = Compress::Raw::Zlib::Deflate->new(-Level => 9,
        -WindowBits => WANT_GZIP, -AppendOutput => 1);
    my $out = '';
    $d->deflate(my $p = $prefix, $out) == Z_OK or die 'deflate';
    my $block = $unit x int((1 << 20) / length $unit);
    for (1 .. $mb) {
        $d->deflate(my $b = $block, $out) == Z_OK or die 'deflate';
    }
    $d->flush($out) == Z_OK or die 'deflate flush';
    return $out;
}

wanted('decompression bombs') and subtest 'decompression bombs' => sub {
    my $t0 = time;
    my $row = qq{<tr><td class="c">Inbox</td><td>Jane Doe</td><td>Re: quarterly numbers</td></tr>\r\n};
    my %bomb = (
        zeros  => gzip_bomb('<html><body>', "\0", 200),
        html   => gzip_bomb("<!DOCTYPE html>\r\n<html><body><table>\r\n", $row, 200),
        marker => gzip_bomb("<html><body>\r\n" . ($row x 20000)
                            . "<pre id=\"diagnosticDiv\">\r\n", "\0", 100),
    );
    note sprintf 'bombs made in %.1fs: %s', time - $t0,
        join ', ', map { "$_ " . length($bomb{$_}) . ' bytes' } sort keys %bomb;

    $farm->heal;
    $farm->clear_logs;
    $E2->prepend(map {
        { path => "^/owa/\\?bomb=$_\$", signed_in => 1,
          raw => response(body => $bomb{$_}, add => [['Content-Encoding', 'gzip'],
              # the details block is looked for in answers naming an error
              ($_ eq 'marker' ? ['X-OWA-Error', 'Microsoft.Exchange.Diagnostics.ExAssertException'] : ())]) }
    } sort keys %bomb);
    my $ng = front();

    my $get = sub {
        my ($kind) = @_;
        my $req = EH::Client::build_request(GET => "/owa/?bomb=$kind",
            signed_in => 'b' . ++$USER, accept_encoding => 'gzip');
        my $t = time;
        my $raw = raw_exchange(port => $ng->port, data => $req, timeout => 10);
        my $h = index $raw, "\r\n\r\n";
        my $head = $h < 0 ? $raw : substr $raw, 0, $h;
        my ($status) = $head =~ m{\AHTTP/1\.\d (\d+)};
        my ($server) = $head =~ /\r\nX-FEServer: ([^\r]*)/i;
        return { status => $status // 0, server => $server // '-',
                 body => $h < 0 ? 0 : length($raw) - $h - 4,
                 elapsed => time - $t };
    };

    # warm up: pools, buffers and TLS sessions in place before measuring
    $get->('zeros') for 1 .. 3;
    my $before = EH::Front::worker_usage($ng);
    my @r;
    for my $kind (sort keys %bomb) {
        push @r, map { +{ %{ $get->($kind) }, kind => $kind } } 1 .. 9;
    }
    my $after = EH::Front::worker_usage($ng);

    my @e2 = grep { $_->{server} eq 'EXCH2' } @r;
    is scalar(@e2), 9, 'EXCH2 sent 9 bombs, 3 of each';
    is join(' ', map { $_->{status} } @r), join(' ', (200) x 27),
        'every client gets 200';
    is scalar(grep { $_->{body} == length $bomb{ $_->{kind} } } @e2), 9,
        'the bombs reach the client as sent (uninflated)';
    my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @r;
    cmp_ok $max, '<', 2, 'every answer within 2s';
    note sprintf 'worker %d: RSS %d kB -> %d kB, CPU %.2fs -> %.2fs',
        $before->{pid}, $before->{rss_kb}, $after->{rss_kb}, $before->{cpu},
        $after->{cpu};
  SKIP: {
        # AddressSanitizer holds freed memory back on purpose
        skip 'memory under AddressSanitizer (make sanitize)', 1
            if ($ENV{ASAN_OPTIONS} // '') ne '';
        cmp_ok $after->{rss_kb} - $before->{rss_kb}, '<', 4096,
            "the worker's memory stays within 4 MB (1.5 GB were inflatable)";
    }
    cmp_ok $after->{cpu} - $before->{cpu}, '<', 0.6,
        'and its CPU time within 0.6 s: the bombs were not inflated';
    is $after->{pid}, $before->{pid}, 'the same worker throughout';

    my @v = EH::Front::wait_verdicts($ng, 30);
    my @v2 = grep { ($farm->name_of($_->{upstream_addr}) // '') eq 'EXCH2' } @v;
    is join(' ', map { $_->{verdict} } @v2), join(' ', ('healthy') x 10),
        'EXCH2 judged healthy (10 answers): no marker within the scan window';
    is join(' ', ejections($ng)), '', 'nobody ejected';

    farm_serves($ng, 'bombs');
    status_ok($ng, 'bombs');
    diag log_tail($ng) unless Test::More->builder->is_passing;
    $ng->stop;

    # the control: with a scan window past the marker, it is found (as
    # the body streams: the hold is long over)
    $farm->clear_logs;
    $ng = front(location => 'exchange_health_scan 4m;');
    my @c = map { $get->('marker') } 1 .. 3;
    is join(' ', map { "$_->{status}/$_->{server}" } @c), '200/EXCH1 200/EXCH2 200/EXCH3',
        'control, exchange_health_scan 4m: the marker bomb reaches the client';
    my @cv = EH::Front::wait_verdicts($ng, 3);
    is join(' ', map { $_->{verdict} } @cv), 'healthy failure healthy',
        'control: its marker is found past 32k';
    $ng->stop;
};

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
# and holds the header for the data; none comes, and proxy_read_timeout
# (3s, still the header's) ends the wait: a timeout, retried.  Without
# the module the client would get the header and wait for the body.
hostile(name => 'chunk size ffffffffff (1 TB), then silence',
        route => { raw => response(
            add => [['Transfer-Encoding', 'chunked']],
            body => "ffffffffff\r\n<html><body>hello</body></html>\r\n") },
        clients => sub {
            is join(' ', map { outcome($_) . '/' . (fe($_) =~ s/EXCH[13]/other/r) } @_),
               join(' ', ('200/other') x 9),
               'every client gets 200, from EXCH1 or EXCH3';
            my @slow = grep { $_->{elapsed} > 1 } @_;
            is scalar(@slow), 3, '3 of them late';
            ok !grep({ $_->{elapsed} < 2.8 } @slow), "after nginx's read timeout (3s)";
        },
        eject => 'upstream-timeout', verdicts => { rescued => 3, healthy => 6 },
        bound => 5,
        check => sub {
            my ($ng) = @_;
            is scalar($ng->grep_error_log(qr/upstream timed out .* while reading response header/)), 3,
                'nginx: upstream timed out while reading the header, 3 times';
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

# ------------------------------------------------ huge and repeated headers

{
    my $big = 'X' x 7000;
    hostile(name => '7 KB header value, proxy_buffer_size 4k: too big header',
            route => { capture => 'errorfe-page-en', headers => { 'X-Junk' => $big } },
            clients => sub {
                is join(' ', map { outcome($_) } @_),
                    '200 502 200 200 502 200 200 502 200',
                    "EXCH2's answers: nginx's 502 (invalid_header is not retried by default)";
            },
            eject => 'upstream-error',
            verdicts => { 'upstream-error' => 3, healthy => 6 },
            check => sub {
                my ($ng) = @_;
                is scalar($ng->grep_error_log(qr/upstream sent too big header/)), 3,
                    'nginx: upstream sent too big header, 3 times';
            });
    hostile(name => '7 KB header value, proxy_buffer_size 8k: errorFE page found',
            front => { location => 'proxy_buffer_size 8k;' },
            route => { capture => 'errorfe-page-en', headers => { 'X-Junk' => $big } },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });
    hostile(name => '7 KB header value, proxy_buffer_size 8k: healthy page, buffer full',
            front => { location => 'proxy_buffer_size 8k;' },
            route => { capture => 'owa-signed-in', headers => { 'X-Junk' => $big } },
            clients => 'all-200', eject => undef, verdicts => { healthy => 9 });
}

hostile(name => '500 X-FEServer headers on an OWA 500',
        front => { location => 'proxy_buffer_size 16k; proxy_buffers 8 16k;' },
        route => { capture => 'owa-service-500',
                   headers => { 'X-FEServer' => [ map { "EXCH2-$_" } 1 .. 500 ] } },
        clients => 'all-200', eject => 'fe500',
        verdicts => { rescued => 3, healthy => 6 },
        check => sub {
            my ($ng, $r, $v, $j) = @_;
            is server_of($j, 'EXCH2')->{name}, 'EXCH2-1', 'named by the first';
        });

hostile(name => '200 Set-Cookie headers',
        front => { location => 'proxy_buffer_size 32k; proxy_buffers 8 32k;' },
        route => { capture => 'owa-signed-in',
                   add_headers => [ map { ['Set-Cookie', "c$_=" . ('v' x 40)
                                           . "; path=/owa; secure; HttpOnly"] } 1 .. 200 ] },
        clients => sub {
            my @e2 = grep { fe($_) eq 'EXCH2' } @_;
            is scalar(@e2), 3, 'EXCH2 answered 3';
            cmp_ok scalar($_->header_all('Set-Cookie')), '>=', 200,
                'with its 200 cookies' for @e2;
            is scalar(grep { ($_->{status} // 0) == 200 && !$_->{error} } @_), 9,
                'every client gets a whole 200';
        },
        eject => undef, verdicts => { healthy => 9 });

{
    my $redir = wire('errorfe-redirect');
    (my $nocolon = $redir) =~ s/\r\n/\r\nThisHeaderLineHasNoColon\r\n/;
    hostile(name => 'a header line without a colon (errorFE redirect)',
            route => { raw => $nocolon },
            clients => 'all-200', eject => 'errorfe-redirect',
            verdicts => { rescued => 3, healthy => 6 });
}

# ------------------------------------------------ hostile X-FEServer values
#
# The name goes to the zone, the status page and the ejection's log line:
# escaped for each, the JSON valid UTF-8, the log line free of control
# bytes.

# What the status page shows for a name: cut at 64 bytes (an FQDN: 96),
# control bytes as '?', each byte that is not UTF-8 as U+FFFD.
sub shown {
    my $v = substr $_[0], 0, $_[1] // 64;
    $v =~ s/[\x00-\x1f\x7f]/?/g;
    my $out = '';
    while (length $v) {
        if ($v =~ s/\A([\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]
                       |[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]
                       |\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}
                       |\xf4[\x80-\x8f][\x80-\xbf]{2})//x) {
            my $c = $1;
            utf8::decode($c);
            $out .= $c;
        } else {
            substr($v, 0, 1, '');
            $out .= "\x{fffd}";
        }
    }
    return $out;
}

sub no_control_bytes_in_ejection {
    my ($ng, $what) = @_;
    my @l = grep { /ejected for/ } split /\n/, $ng->error_log;
    is scalar(@l), 1, "$what: one ejection line";
    ok !grep({ /[\x00-\x08\x0b-\x1f\x7f]/ } @l),
        "$what: the ejection's log line has no raw control bytes"
        or diag map { s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ger . "\n" } @l;
}

for my $n (
    { name => 'markup', value => '<script>alert(1)</script>',
      html => '&lt;script&gt;alert(1)&lt;/script&gt;' },
    { name => 'quotes', value => q{"EXCH2"'&\\},
      html => '&quot;EXCH2&quot;&#39;&amp;\\' },
    { name => 'control bytes', value => "EXCH\x01TWO\x1b[31mRED\x1b[0m" },
    { name => 'bytes that are not UTF-8', value => "EXCH\xff\xfe\xc3\x28\x80\x9b31mTWO" },
    { name => 'kilobytes', value => ('A' x 63) . "\xc3\xa9" . ('B' x 6000),
      front => { location => 'proxy_buffer_size 16k; proxy_buffers 8 16k;' } },
)
{
    hostile(name => "X-FEServer with $n->{name}",
            front => $n->{front},
            route => { raw => wire('errorfe-redirect',
                                   headers => { 'X-FEServer' => $n->{value} }) },
            clients => 'all-200', eject => 'errorfe-redirect',
            check => sub {
                my ($ng, $r, $v, $j, $html) = @_;
                is server_of($j, 'EXCH2')->{name}, shown($n->{value}),
                    'JSON: the name as stored and escaped';
                unlike $html, qr/<script>|[\x00-\x08\x0b-\x1f\x7f]/,
                    'HTML: no markup, no control bytes';
                like $html, qr/\Q$n->{html}\E/, 'HTML: escaped' if $n->{html};
                ok utf8::decode(my $copy = $html), 'HTML: valid UTF-8';
                no_control_bytes_in_ejection($ng, 'log');
            });
}

# X-OWA-Error (the exception the status page and the log line show) with
# control bytes, and a request path with encoded ones (%1b, %0a): the log
# line must neither colour a terminal nor start a forged line.
hostile(name => 'X-OWA-Error with control bytes',
        route => { capture => 'errorfe-page-en',
                   headers => { 'X-OWA-Error' => "Microsoft.Exchange\x1b[31m.Fake\x01Exception" } },
        clients => 'all-200', eject => 'errorfe-page',
        check => sub {
            my ($ng, $r, $v, $j, $html) = @_;
            like server_of($j, 'EXCH2')->{protocols}{owa}{last_failure}{error} // '',
                qr/^Microsoft\.Exchange.*Fake.*Exception$/, 'JSON: the error, escaped';
            unlike $html, qr/[\x00-\x08\x0b-\x1f\x7f]/, 'HTML: no control bytes';
            no_control_bytes_in_ejection($ng, 'log');
        });

hostile(name => 'request path with %1b and %0a on a failing server',
        path => '/owa/%1b[31m%0aFORGED-LINE%20[emerg]%20exchange_health:%20forged',
        route => { path => '^/owa/', capture => 'errorfe-redirect' },
        clients => 'all-200', eject => 'errorfe-redirect',
        check => sub {
            my ($ng) = @_;
            unlike $ng->error_log, qr/^FORGED-LINE/m, 'no forged line in the error log';
            no_control_bytes_in_ejection($ng, 'log');
        },
        allow => [ qr/FORGED-LINE/ ]);

# ------------------------------------------------ thousands of names
#
# EXCH2 gives another X-FEServer on every answer (EXCH2-1, EXCH2-2, ...)
# for 3000 answers: the zone keeps one name per server, the status page
# shows EXCH2's latest, memory stays put, nothing alarming is logged.

wanted('a new X-FEServer on every answer, 3000 times')
    and subtest 'a new X-FEServer on every answer, 3000 times' => sub {
    my ($n, $most) = (3000, 3600);
    $farm->heal;
    $farm->clear_logs;
    $E2->prepend(map {
        { path => "^/EWS/Exchange\\.asmx\\?n=$_\$", capture => 'ews-ok',
          headers => { 'X-FEServer' => "EXCH2-$_" } }
    } 1 .. $most);
    # EXCH2 weighs 20: 20 of 22 requests go to it
    my $ng = front(params => { EXCH2 => 'max_fails=0 weight=20' },
                   upstream => 'keepalive 8;');
    my $c = $ng->client(timeout => 5);

    my ($i, $latest, %names, @bad) = (0);
    my $get = sub {
        my $r = $c->request(GET => '/EWS/Exchange.asmx?n=' . ++$i,
                            signed_in => 'ews-user');
        push @bad, outcome($r) unless ($r->{status} // 0) == 200 && !$r->{error};
        $names{ $latest = fe($r) } = 1 if fe($r) =~ /^EXCH2-/;
    };
    $get->() for 1 .. 200;                   # warm up
    my $before = EH::Front::worker_usage($ng);
    my $t0 = time;
    $get->() while keys(%names) < $n && $i < $most;
    my $after = EH::Front::worker_usage($ng);
    note sprintf '%d requests in %.1fs, %d names; worker RSS %d kB -> %d kB',
        $i, time - $t0, scalar keys %names, $before->{rss_kb}, $after->{rss_kb};

    is "@bad", '', "all $i requests got a whole 200";
    is scalar(keys %names), $n, "EXCH2 answered with $n names";
  SKIP: {
        skip 'memory under AddressSanitizer (make sanitize)', 1
            if ($ENV{ASAN_OPTIONS} // '') ne '';
        cmp_ok $after->{rss_kb} - $before->{rss_kb}, '<', 2048,
            "the worker's memory does not grow (< 2 MB)";
    }
    is $after->{pid}, $before->{pid}, 'the same worker throughout';

    my ($j) = status_ok($ng, '3000 names');
    my @s = @{ $j->{upstreams}[0]{servers} || [] };
    is_deeply [ sort map { $_->{name} =~ /^EXCH2-/ ? 'EXCH2-n' : $_->{name} } @s ],
        [qw(EXCH1 EXCH2-n EXCH3)], 'one name per server';
    is server_of($j, 'EXCH2')->{name}, $latest, "EXCH2 shown by its latest name ($latest)";
    is_deeply [ grep { /\[(?:error|crit|alert|emerg)\]|zone .* is full/ }
                split /\n/, $ng->error_log ], [], 'nothing alarming in the error log';
    is join(' ', ejections($ng)), '', 'nobody ejected';
    $ng->stop;
};

# ------------------------------------------------ trickles
#
# proxy_read_timeout 2s.  While nginx reads a header (and while the
# module holds one for its body), proxy_read_timeout runs from the moment
# the request was sent: a header trickled forever is cut at 2 s and the
# request retried.  For a body trickled after the header the hold ends
# at the first byte after 500 ms; nginx then reads the body at the
# server's pace, and no timeout of nginx ends it.

# Run $code in a child; the returned sub waits for it and gives back
# what it returned (a hash of plain values).
my $BG = 0;
sub in_background {
    my ($code) = @_;
    my $file = run_dir() . '/bg-' . ++$BG . '.json';
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $res = eval { $code->() } // { error => "died: $@" };
        spew($file, EH::Util::json_encode($res));
        POSIX::_exit(0);
    }
    return sub { waitpid $pid, 0; EH::Util::json_decode(slurp($file)) };
}

sub summary {
    my ($r, $t0) = @_;
    return { status => $r->{status}, error => $r->{error}, server => fe($r),
             elapsed => $r->{elapsed},
             first_byte => defined $r->{first_byte} ? $r->{first_byte} - $t0 : undef,
             outcome => outcome($r) };
}

# Round robin's order, fresh nginx: requests 2, 5 and 8 go to EXCH2.
# Those run in the background, started 0.15 s apart so that round robin
# has picked their server before the next request; the others (EXCH1,
# EXCH3) run meanwhile and must be quick.
sub trickle_case {
    my (%c) = @_;
    my $name = $c{name};
    return unless wanted($name);
    subtest $name => sub {
        $farm->heal;
        $farm->clear_logs;
        $E2->prepend({ path => '^/owa/$', signed_in => 1, %{ $c{route} } });
        my $ng = front(read_timeout => '2s', location => $c{location});

        my (@wait, @quick);
        for my $i (1 .. 9) {
            my $user = 't' . ++$USER;
            if ($i % 3 == 2) {
                push @wait, in_background(sub {
                    my $t0 = time;
                    my $r = $ng->request(GET => '/owa/', signed_in => $user,
                                         timeout => $c{timeout} // 6);
                    return summary($r, $t0);
                });
                sleep 0.15;
            } else {
                my $t0 = time;
                push @quick, summary($ng->request(GET => '/owa/', signed_in => $user,
                                                  timeout => 5), $t0);
            }
        }
        is join(' ', map { "$_->{outcome}/" . ($_->{server} =~ s/EXCH[13]/other/r) } @quick),
           join(' ', ('200/other') x 6),
           "$name: meanwhile, EXCH1 and EXCH3 answer the others";
        my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @quick;
        cmp_ok $max, '<', 1, "$name: promptly";

        my @r = map { $_->() } @wait;
        is $E2->hits(path => '^/owa/$'), 3, "$name: 3 requests reached EXCH2";
        note "$name: " . join ', ', map {
            sprintf '%s from %s in %.2fs (first byte after %s)', $_->{outcome},
                $_->{server}, $_->{elapsed},
                defined $_->{first_byte} ? sprintf('%.2fs', $_->{first_byte}) : '-'
        } @r;
        $c{check}->($ng, @r);

        farm_serves($ng, $name);
        status_ok($ng, $name);
        diag log_tail($ng) unless Test::More->builder->is_passing;
        $ng->stop;
    };
}

{
    my $ok = wire('owa-signed-in');
    my $h = head_len($ok);

    trickle_case(name => 'header trickled, 1 byte every 0.5 s',
        route => { raw => $ok, trickle => [1, 0.5] },
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{outcome}/" . ($_->{server} =~ s/EXCH[13]/other/r) } @r),
               '200/other 200/other 200/other',
               'retried after nginx timed out: 200 from another server';
            ok !grep({ $_->{elapsed} < 1.8 || $_->{elapsed} > 3.5 } @r),
                'after proxy_read_timeout (2s), not later';
            is scalar($ng->grep_error_log(qr/upstream timed out .* while reading response header/)),
                3, 'nginx: upstream timed out while reading the header, 3 times';
            is join(' ', ejections($ng)), 'EXCH2:upstream-timeout',
                'EXCH2 ejected by rule upstream-timeout';
        });

    # The header at once, then the body 1 byte every 0.5 s, for longer
    # than the client waits.  The hold ends at the first byte after
    # 500 ms.  With proxy_buffering off the header then goes to the
    # client with the first bytes; with buffering on (the default) nginx
    # keeps the header until a buffer's worth of body (postpone_output)
    # or its end: the client waits for the server, as without the module,
    # and no nginx timeout ends it (every byte comes within 2s).
    my $body_trickle = { raw => $ok, split => [ map { $h + $_ } 0 .. 200 ],
                         split_pause => 0.5 };
    trickle_case(name => 'HTML body trickled, 1 byte every 0.5 s, proxy_buffering off',
        location => "exchange_health_hold 4k 500ms;\n        proxy_buffering off;",
        route => $body_trickle, timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{status}/$_->{server}" } @r),
               '200/EXCH2 200/EXCH2 200/EXCH2', "EXCH2's header reaches the client";
            ok !grep({ !defined $_->{first_byte} || $_->{first_byte} > 1.5 } @r),
                'within the hold time (500 ms) and the next byte';
            is scalar($ng->grep_error_log(qr/upstream timed out/)), 0,
                'nginx never timed out: every byte came within 2s';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });
    trickle_case(name => 'HTML body trickled, 1 byte every 0.5 s, proxy_buffering on',
        location => 'exchange_health_hold 4k 500ms;',
        route => $body_trickle, timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { $_->{outcome} } @r), join(' ', ('none (timeout)') x 3),
               'the clients wait for the server (nginx buffers the header)';
            my @gone;
            wait_until(sub { (@gone = $ng->grep_error_log(
                qr/client prematurely closed connection/)) >= 3 }, timeout => 5);
            is scalar(@gone), 3, 'nginx saw the clients go';
            is scalar(grep { /while reading upstream/ } @gone), 3,
                'while reading the body: the hold had ended';
            is scalar($ng->grep_error_log(qr/upstream timed out/)), 0,
                'nginx never timed out: every byte came within 2s';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });

    # The header and 50 bytes of body, then nothing: the module holds the
    # header; no byte comes to end the hold, proxy_read_timeout does.
    trickle_case(name => 'HTML body stalls while the header is held',
        route => { raw => substr($ok, 0, $h + 50) },
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{outcome}/" . ($_->{server} =~ s/EXCH[13]/other/r) } @r),
               '200/other 200/other 200/other',
               'retried after nginx timed out: 200 from another server';
            ok !grep({ $_->{elapsed} < 1.8 || $_->{elapsed} > 3.5 } @r),
                'after proxy_read_timeout (2s)';
            is join(' ', ejections($ng)), 'EXCH2:upstream-timeout',
                'EXCH2 ejected by rule upstream-timeout';
        });
}

# A chunked body that keeps coming for longer than the client waits.
{
    my $head = response(add => [['Transfer-Encoding', 'chunked']], body => '');
    my $body = join '', map { my $d = "<p>row $_</p>"; sprintf("%x\r\n%s\r\n", length $d, $d) } 1 .. 400;
    trickle_case(name => 'chunks trickled for longer than the client waits',
        route => { raw => $head . $body . "0\r\n\r\n", trickle => [20, 0.1] },
        timeout => 4,
        check => sub {
            my ($ng, @r) = @_;
            is join(' ', map { "$_->{status}/$_->{server}" } @r),
               '200/EXCH2 200/EXCH2 200/EXCH2', "EXCH2's header reaches the client";
            ok !grep({ !defined $_->{first_byte} || $_->{first_byte} > 2.5 } @r),
                'within 2.5s, though the body never ends';
            is join(' ', ejections($ng)), '', 'nobody ejected';
        });
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
# the module retries.
{
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
        hostile(name => "errorFE page with $f",
                route => { raw => response(headers => [ @$fe_h, @{ $forms{$f} } ],
                                           body => $body), keepalive => 0 },
                clients => 'all-200', eject => 'errorfe-page',
                verdicts => { rescued => 3, healthy => 6 });
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
# one is cut, stored and escaped like the name.
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
                is server_of($j, 'EXCH2')->{fqdn}, shown($fqdn, 96),
                    'JSON: the FQDN as stored and escaped';
                unlike $html, qr/<b>|[\x00-\x08\x0b-\x1f\x7f]/, 'HTML: no markup, no control bytes';
                ok utf8::decode(my $copy = $html), 'HTML: valid UTF-8';
            });
}

# ------------------------------------------------ with other nginx paths
#
# The hostile answers again, through paths that take the request out of
# the upstream: unbuffered proxying, error pages, an internal redirect to
# a named location that proxies to the same upstream (a second module
# context for one request), a client that leaves while the header is held.

{
    my $page = wire('errorfe-page-en');
    my $ext = ';' . join ';', map { "ext$_=" . ('x' x 100) } 1 .. 80;
    my $fe_body = substr $page, head_len($page);
    my $ext_body = sprintf('%x', 512) . "$ext\r\n" . substr($fe_body, 0, 512) . "\r\n"
                 . EH::Capture::chunk_bytes(substr($fe_body, 512), 1024);

    hostile(name => 'proxy_buffering off: errorFE page',
            front => { location => 'proxy_buffering off;' },
            route => { capture => 'errorfe-page-en', chunked => 100 },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { rescued => 3, healthy => 6 });
    hostile(name => 'proxy_buffering off: 8 KB chunk extension before the errorFE page',
            front => { location => 'proxy_buffering off;' },
            route => { raw => response(add => [['Transfer-Encoding', 'chunked']],
                                       body => $ext_body) },
            clients => 'all-200', eject => 'errorfe-page',
            verdicts => { failure => 3, healthy => 6 });
    hostile(name => 'proxy_buffering off: errorFE page closed while held',
            front => { location => 'proxy_buffering off;' },
            route => { capture => 'errorfe-page-en', truncate => head_len($page) + 50 },
            clients => 'all-200', eject => 'upstream-error',
            verdicts => { rescued => 3, healthy => 6 });

    my $errors = {
        location => "proxy_intercept_errors on;\n        error_page 500 502 504 /50x.html;",
        server => 'location = /50x.html { internal; return 503 "sorry\n"; }' };
    hostile(name => 'error_page for 500, retry off: OWA 500s replaced by nginx\'s page',
            path => '/owa/service.svc', route => { path => '^/owa/service\\.svc',
                                                   capture => 'owa-service-500' },
            front => { %$errors, location => "$errors->{location}\n        exchange_health_retry off;" },
            clients => sub {
                is join(' ', map { $_->{status} . ($_->{body} eq "sorry\n" ? '+page' : '') } @_),
                    '200 500+page 200 200 500+page 200 200 500+page 200',
                    "EXCH2's 500s get the error page";
            },
            eject => 'fe500',
            check => sub {
                my ($ng, $r, $v, $j) = @_;
                my ($ej) = EH::Front::changes($ng, 'ejected');
                like $ej->{line} // '', qr{ on GET /owa/service\.svc, },
                    'the ejection names the request that failed, not the error page';
                is server_of($j, 'EXCH2')->{protocols}{owa}{last_failure}{uri},
                    '/owa/service.svc', 'so does the status page';
            });
    hostile(name => 'error_page for 502: errorFE page closed while held, no next upstream',
            route => { capture => 'errorfe-page-en', truncate => head_len($page) },
            front => { %$errors, location => "$errors->{location}\n        proxy_next_upstream off;" },
            clients => sub {
                is join(' ', map { $_->{status} . ($_->{body} eq "sorry\n" ? '+page' : '') } @_),
                    '200 502+page 200 200 502+page 200 200 502+page 200',
                    "EXCH2's answers get the error page";
            },
            eject => 'upstream-error');

    my $again = join "\n        ", 'proxy_pass https://exchange;', 'proxy_ssl_verify off;',
        'proxy_http_version 1.1;', 'proxy_set_header Connection "";', 'proxy_read_timeout 3s;';
    hostile(name => 'error_page 502 to a named location that proxies again',
            route => { capture => 'errorfe-page-en', truncate => head_len($page) },
            front => { location => "proxy_next_upstream off;\n        proxy_intercept_errors on;\n"
                                 . "        error_page 502 504 = \@again;",
                       server => "location \@again {\n        $again\n    }" },
            clients => 'all-200', eject => 'upstream-error', verdicts => sub {});

    hostile(name => 'the client leaves while the header is held',
            route => { raw => substr($page, 0, head_len($page) + 50) },
            timeout => 1, client_timeout_ok => 1, bound => 1.5,
            clients => sub {
                is join(' ', map { outcome($_) } @_),
                    join(' ', ('200', 'none (timeout)', '200') x 3),
                    'the 3 clients on EXCH2 give up after 1s';
            },
            eject => undef,
            check => sub {
                my ($ng) = @_;
                my @gone;
                wait_until(sub { (@gone = $ng->grep_error_log(
                    qr/client prematurely closed connection.*while reading response header/)) >= 3 },
                    timeout => 5);
                is scalar(@gone), 3, 'nginx saw them go during the hold';
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
