#!/usr/bin/perl

# Hostile back ends: bad compression and decompression bombs.
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

done_testing;
