#!/usr/bin/perl

# Hostile back ends: huge and repeated headers, markup and control bytes in
# X-FEServer, a name that changes on every answer.
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

done_testing;
