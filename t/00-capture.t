# Harness self-test: EH::Capture parsing, substitution and re-framing
# (no network).

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use File::Temp qw(tempdir);
use IO::Uncompress::Gunzip qw(gunzip);
use Compress::Zlib ();

my %VARS = (FESERVER => 'EXCH2', FQDN => 'exch2.contoso.local', BESERVER => 'EXCH2');

# Independent reference for "placeholders replaced, Content-Length fixed".
sub expected_bytes {
    my ($raw) = @_;
    $raw =~ s/\{\{(FESERVER|FQDN|BESERVER)\}\}/$VARS{$1}/g;
    my $i = index $raw, "\r\n\r\n";
    my ($head, $body) = (substr($raw, 0, $i + 4), substr($raw, $i + 4));
    if ($head !~ /\r\nTransfer-Encoding:\s*chunked/i) {
        my $len = length $body;
        $head =~ s/(\r\nContent-Length:\s*)\d+/$1$len/i;
    }
    return $head . $body;
}

# Independent de-chunker.
sub dechunk {
    my ($wire) = @_;
    my ($out, @sizes) = ('');
    while ($wire =~ s/\A([0-9a-fA-F]+)[^\r]*\r\n//) {
        my $n = hex $1;
        push @sizes, $n;
        last if $n == 0;
        $out .= substr $wire, 0, $n, '';
        $wire =~ s/\A\r\n// or return (undef, \@sizes);
    }
    return ($out, \@sizes, $wire);
}

subtest 'every capture parses and round-trips byte for byte' => sub {
    my @names = EH::Capture->names;
    ok scalar(@names) >= 4, 'captures found: ' . scalar @names;
    for my $n (@names) {
        my $c = capture($n);
        my $raw = slurp($c->file);
        my $head_end = index($raw, "\r\n\r\n");
        my $cl = $c->header('Content-Length');
        if (!defined $cl || $cl == length(substr $raw, $head_end + 4) || $c->is_chunked) {
            is $c->bytes, $raw, "$n: no options -> file bytes";
        }
        if (!($c->is_chunked && $c->body =~ /\{\{/)) {   # (that case: see below)
            is $c->bytes(vars => \%VARS), expected_bytes($raw),
                "$n: placeholders substituted, Content-Length recomputed";
        }
        unlike $c->bytes(vars => \%VARS), qr/\{\{(?:FESERVER|FQDN|BESERVER)\}\}/,
            "$n: no placeholder left";
    }
};

subtest 'real captures used by the presets exist' => sub {
    for my $n (qw(errorfe-redirect errorfe-page-en owa-service-500 owa-service-500-chunked
                  ecp-json-500 owa-logon owa-redirect-logon owa-signed-in owa-service-ok
                  ecp-page healthcheck eas-options ews-ok owa-script)) {
        ok(EH::Capture->is_real($n), "t/captures/$n.http present")
            or diag "missing capture $n";
    }
};

subtest 'parsing' => sub {
    my $c = capture('eh-tiny');
    is $c->status, 200, 'status';
    is $c->reason, 'OK', 'reason';
    is $c->status_line, 'HTTP/1.1 200 OK', 'status line';
    is_deeply [ map { $_->[0] } @{ $c->headers } ],
        [qw(Content-Type X-FEServer X-BEServer Content-Length)], 'header order kept';
    is $c->header('x-feserver'), '{{FESERVER}}', 'header lookup is case-insensitive';
    like $c->body, qr/\Ahello from \{\{FESERVER\}\}/, 'body';
    my $b = $c->bytes(vars => \%VARS);
    like $b, qr/\r\nContent-Length: 54\r\n/, 'wrong Content-Length in file is corrected';
    like $b, qr/\r\n\r\nhello from EXCH2 \(exch2\.contoso\.local\) backend EXCH2\r\n\z/,
        'body substituted';

    my $ch = capture('eh-chunked');
    ok $ch->is_chunked, 'stored chunked detected';
    is $ch->body, "0123456789abcdefghijklmnopqrstuvwxyzEND\r\n", 'de-chunked body';
    is $ch->trailers, "X-Trailer: yes\r\n", 'trailers kept';
    is $ch->bytes(vars => \%VARS), slurp($ch->file) =~ s/\{\{FESERVER\}\}/EXCH2/r,
        'stored chunked: chunk lines (upper-case hex, extensions) kept exactly';

    my $cv = capture('eh-chunked-vars');
    my $bv = $cv->bytes(vars => \%VARS);
    my ($body, $sizes) = dechunk(substr $bv, index($bv, "\r\n\r\n") + 4);
    is $body, "server: EXCH2!\r\n", 'placeholder inside a stored chunk substituted';
    is_deeply $sizes, [8, 5, 3, 0], 'chunk boundaries kept, sizes recomputed';

    my $real = capture('owa-service-500-chunked');
    ok $real->is_chunked, 'owa-service-500-chunked is stored chunked';
    is $real->bytes(vars => \%VARS), expected_bytes(slurp($real->file)),
        'owa-service-500-chunked replays exactly (headers substituted only)';
};

subtest 'chunked re-encoding' => sub {
    my $c = capture('errorfe-page-en');
    my $plain = $c->bytes(vars => \%VARS);
    my $orig_body = substr $plain, index($plain, "\r\n\r\n") + 4;
    for my $size (1, 7, 1000, 100_000) {
        my $b = $c->bytes(vars => \%VARS, chunked => $size);
        my $i = index $b, "\r\n\r\n";
        my ($head, $wire) = (substr($b, 0, $i + 4), substr($b, $i + 4));
        like $head, qr/\r\nTransfer-Encoding: chunked\r\n/, "size $size: TE chunked";
        unlike $head, qr/Content-Length/i, "size $size: no Content-Length";
        my ($body, $sizes, $rest) = dechunk($wire);
        is $body, $orig_body, "size $size: decodes to the original body";
        is $rest, "\r\n", "size $size: ends with the last chunk and an empty line";
        my @data = @$sizes[0 .. $#$sizes - 1];
        is scalar(grep { $_ != $size } @data[0 .. $#data - 1]), 0,
            "size $size: all chunks but the last have the chosen size";
        ok $data[-1] > 0 && $data[-1] <= $size, "size $size: last data chunk";
        is $sizes->[-1], 0, "size $size: terminating zero chunk";
    }
    # exact framing for a tiny body
    my $t = capture('eh-tiny')->bytes(vars => \%VARS, chunked => 20);
    like $t, qr/\r\n\r\n14\r\nhello from EXCH2 \(ex\r\n14\r\nch2\.contoso\.local\) b\r\n/,
        'hex chunk sizes, CRLF after each chunk';
    like $t, qr/\r\n0\r\n\r\n\z/, 'last chunk';
    # re-chunking a stored chunked capture
    my $r = capture('owa-service-500-chunked')->bytes(vars => \%VARS, chunked => 16);
    my ($rb) = dechunk(substr $r, index($r, "\r\n\r\n") + 4);
    is $rb, capture('owa-service-500-chunked')->body =~ s/\{\{(\w+)\}\}/$VARS{$1}/gr,
        'stored chunked capture re-chunked with another size';
};

subtest 'gzip and deflate' => sub {
    my $c = capture('owa-signed-in');
    my $want = $c->body =~ s/\{\{(\w+)\}\}/$VARS{$1}/gr;
    for my $enc (qw(gzip deflate)) {
        for my $chunked (0, 512) {
            my $b = $c->bytes(vars => \%VARS, $enc => 1, ($chunked ? (chunked => $chunked) : ()));
            my $i = index $b, "\r\n\r\n";
            my ($head, $wire) = (substr($b, 0, $i + 4), substr($b, $i + 4));
            like $head, qr/\r\nContent-Encoding: $enc\r\n/, "$enc/$chunked: Content-Encoding";
            like $head, qr/\r\nVary: [^\r]*Accept-Encoding/, "$enc/$chunked: Vary";
            my $body = $wire;
            if ($chunked) {
                ($body) = dechunk($wire);
            }
            else {
                my ($cl) = $head =~ /\r\nContent-Length: (\d+)\r\n/;
                is $cl, length $wire, "$enc: Content-Length is the compressed length";
            }
            ok length($body) < length($want), "$enc/$chunked: compressed";
            my $out;
            if ($enc eq 'gzip') { gunzip(\$body => \$out) or die }
            else { $out = Compress::Zlib::uncompress($body) }
            is $out, $want, "$enc/$chunked: decompresses to the original body";
        }
    }
    is EH::Capture::decode_content(EH::Capture::gzip_bytes("x" x 100), 'gzip'), "x" x 100,
        'decode_content gzip';
};

subtest 'status and header edits' => sub {
    my $c = capture('owa-service-ok');
    my $b = $c->bytes(vars => \%VARS, status => 503, headers => { 'X-Test' => 'yes', 'X-FEServer' => undef },
                      add_headers => [[ 'X-Added', '{{FQDN}}' ]], remove_headers => ['request-id']);
    like $b, qr{\AHTTP/1\.1 503 Service Unavailable\r\n}, 'status override';
    like $b, qr/\r\nX-Test: yes\r\n/, 'header set';
    like $b, qr/\r\nX-Added: exch2\.contoso\.local\r\n/, 'header added, substituted';
    unlike $b, qr/X-FEServer|request-id/i, 'headers removed';
    my $h = $c->bytes(vars => \%VARS, head_only => 1);
    like $h, qr/\r\n\r\n\z/, 'head_only ends after the header block';
    my $syn = EH::Capture->synthetic(status => 404);
    like $syn->bytes(vars => \%VARS), qr{\AHTTP/1\.1 404 Not Found\r\n.*X-FEServer: EXCH2\r\n}s,
        'synthetic response';
};

subtest 'malformed files die with the file name and the problem' => sub {
    my $dir = tempdir(CLEANUP => 1);
    my %bad = (
        'no-empty-line'  => ["HTTP/1.1 200 OK\r\nA: b\r\n", qr/no empty line/],
        'bare-lf'        => ["HTTP/1.1 200 OK\nA: b\n\nbody", qr/bare LF/],
        'status-line'    => ["HTTP/1.1 OK\r\nA: b\r\n\r\n", qr/bad status line/],
        'header'         => ["HTTP/1.1 200 OK\r\nnot a header\r\n\r\n", qr/line 2: not a header/],
        'chunk-size'     => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                             qr/bad chunk size line 'zz'/],
        'chunk-short'    => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc\r\n",
                             qr/runs past the end/],
        'chunk-no-crlf'  => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
                             qr/not followed by CRLF/],
        'chunk-no-end'   => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                             qr/no CRLF|not terminated/],
        'chunk-garbage'  => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nxx",
                             qr/garbage after the last chunk/],
    );
    for my $name (sort keys %bad) {
        my $f = "$dir/$name.http";
        spew($f, $bad{$name}[0]);
        my $ok = eval { EH::Capture->load($f); 1 };
        ok !$ok, "$name: dies";
        like $@, qr/\Q$f\E/, "$name: message names the file";
        like $@, $bad{$name}[1], "$name: message says what is wrong";
    }
    ok !eval { EH::Capture->load('no-such-capture-xyz'); 1 }, 'unknown name dies';
    like $@, qr/no-such-capture-xyz.*not found/, 'unknown name: message';
};

done_testing;
