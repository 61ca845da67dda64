package EH::Capture;

# A captured HTTP response (t/captures/<name>.http): parse, substitute
# placeholders, re-frame, serialise.  See t/lib/README.md.

use strict;
use warnings;

use Carp qw(croak);
use Compress::Zlib ();
use IO::Compress::Gzip ();
use IO::Uncompress::Gunzip ();
use File::Basename qw(dirname);
use Cwd qw(abs_path);

use EH::Util qw(slurp captures_dir);

# Where capture names are looked up, in order: the real captures, then
# the harness's own small fixtures (t/lib/EH/fixtures, names eh-*).
our @PATH = (captures_dir(), dirname(abs_path(__FILE__)) . '/fixtures');

our %REASON = (
    100 => 'Continue', 200 => 'OK', 201 => 'Created', 204 => 'No Content',
    206 => 'Partial Content', 301 => 'Moved Permanently', 302 => 'Found',
    303 => 'See Other', 304 => 'Not Modified', 307 => 'Temporary Redirect',
    400 => 'Bad Request', 401 => 'Unauthorized', 403 => 'Forbidden',
    404 => 'Not Found', 405 => 'Method Not Allowed', 440 => 'Login Timeout',
    449 => 'Retry With', 500 => 'Internal Server Error',
    501 => 'Not Implemented', 502 => 'Bad Gateway',
    503 => 'Service Unavailable', 504 => 'Gateway Timeout',
);

# ---------------------------------------------------------------- finding

# Absolute file for a capture name or path; undef when there is none.
sub find {
    my ($class, $what) = @_;
    return $what if $what =~ m{/} && -f $what;
    return "$what" if $what =~ /\.http\z/ && -f $what;
    for my $dir (@PATH) {
        my $f = "$dir/$what";
        $f .= '.http' unless $f =~ /\.http\z/;
        return $f if -f $f;
    }
    return undef;
}

# True when the capture comes from t/captures (not a harness fixture).
sub is_real {
    my ($class, $name) = @_;
    my $f = $class->find($name) or return 0;
    return index($f, captures_dir() . '/') == 0 ? 1 : 0;
}

# Names of all captures available (real ones and harness fixtures).
sub names {
    my %n;
    for my $dir (@PATH) {
        opendir my $dh, $dir or next;
        $n{ s/\.http\z//r } = 1 for grep { /\.http\z/ } readdir $dh;
    }
    return sort keys %n;
}

my %CACHE;

# EH::Capture->load($name_or_path): parsed capture; dies when missing or
# malformed.  Results are cached per file (keyed on mtime and size).
sub load {
    my ($class, $what) = @_;
    croak "EH::Capture->load: no capture name given" unless defined $what;
    my $file = $class->find($what)
        or croak "capture '$what' not found (looked in: @PATH)";
    my @st = stat $file;
    my $key = "$file\0$st[9]\0$st[7]";
    return $CACHE{$key}->clone if $CACHE{$key};
    my $self = $class->parse(slurp($file), file => $file);
    $CACHE{$key} = $self;
    return $self->clone;
}

# ---------------------------------------------------------------- parsing

# EH::Capture->parse($bytes, file => $name_for_errors)
sub parse {
    my ($class, $raw, %o) = @_;
    my $file = $o{file} // '(inline capture)';
    my $bad = sub { croak "malformed capture $file: $_[0]\n" };

    my $hend = index $raw, "\r\n\r\n";
    if ($hend < 0) {
        $bad->("no empty line (CRLF CRLF) ends the header block")
            if index($raw, "\n\n") < 0;
        $bad->("header block ends with bare LF; lines must end with CRLF");
    }
    my $head = substr $raw, 0, $hend;
    my $body_wire = substr $raw, $hend + 4;

    my @lines = split /\r\n/, $head, -1;
    my $status_line = shift @lines;
    $status_line =~ m{\AHTTP/(1\.[01]) ([1-5][0-9][0-9])(?: (.*))?\z}
        or $bad->("bad status line '" . _show($status_line) . "'");
    my ($version, $status, $reason) = ($1, $2, $3 // '');

    my @headers;
    my $n = 1;
    for my $l (@lines) {
        $n++;
        $bad->("line $n contains a bare CR or LF") if $l =~ /[\r\n]/;
        if ($l =~ /\A[ \t]/) {
            $bad->("line $n: obsolete header continuation is not supported");
        }
        $l =~ /\A([!#\$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\z/
            or $bad->("line $n: not a header: '" . _show($l) . "'");
        push @headers, [$1, $2];
    }

    my $self = bless {
        file        => $file,
        raw         => $raw,
        version     => $version,
        status      => $status,
        reason      => $reason,
        headers     => \@headers,
        body        => $body_wire,
        chunked     => 0,
        chunks      => undef,
        trailers    => '',
    }, $class;

    my $te = $self->header('Transfer-Encoding');
    if (defined $te && $te =~ /\bchunked\b/i) {
        $self->{chunked} = 1;
        my ($chunks, $trailers, $err, $last) = _parse_chunks($body_wire);
        $bad->("bad chunked body: $err") if defined $err;
        $self->{chunks}   = $chunks;       # [ [ext, data], ... ]
        $self->{trailers} = $trailers;     # raw trailer lines, each + CRLF
        $self->{last_chunk} = $last;       # the "0" line as in the file
        $self->{body}     = join '', map { $_->[1] } @$chunks;
    }
    return $self;
}

sub _show {
    my $s = shift // '';
    $s = substr($s, 0, 80) . '...' if length $s > 80;
    $s =~ s/([^\x20-\x7e])/sprintf '\\x%02x', ord $1/ge;
    return $s;
}

sub _parse_chunks {
    my ($wire) = @_;
    my @chunks;
    my $pos = 0;
    while (1) {
        my $eol = index $wire, "\r\n", $pos;
        return (undef, undef, "chunk size line at byte $pos has no CRLF")
            if $eol < 0;
        my $line = substr $wire, $pos, $eol - $pos;
        $line =~ /\A([0-9a-fA-F]+)((?:[ \t]*;.*)?)\z/
            or return (undef, undef,
                       "bad chunk size line '" . _show($line) . "' at byte $pos");
        my ($size, $ext) = (hex $1, $2);
        $pos = $eol + 2;
        if ($size == 0) {
            my $last = $line;
            # trailers up to the final empty line
            my $end = $pos;
            my $trailers = '';
            while (1) {
                my $e = index $wire, "\r\n", $end;
                return (undef, undef, "trailer section not terminated by CRLF")
                    if $e < 0;
                my $tl = substr $wire, $end, $e - $end;
                $end = $e + 2;
                last if $tl eq '';
                $trailers .= "$tl\r\n";
            }
            return (undef, undef,
                    sprintf("%d bytes of garbage after the last chunk",
                            length($wire) - $end))
                if $end != length $wire;
            return (\@chunks, $trailers, undef, $last);
        }
        return (undef, undef,
                sprintf("chunk of %d bytes at byte %d runs past the end", $size, $pos))
            if $pos + $size + 2 > length $wire;
        my $data = substr $wire, $pos, $size;
        return (undef, undef, "chunk data at byte $pos not followed by CRLF")
            if substr($wire, $pos + $size, 2) ne "\r\n";
        push @chunks, [$ext, $data, $line];
        $pos += $size + 2;
    }
}

# ---------------------------------------------------------------- access

sub clone {
    my $self = shift;
    my %c = %$self;
    $c{headers} = [ map { [@$_] } @{ $self->{headers} } ];
    $c{chunks}  = [ map { [@$_] } @{ $self->{chunks} } ] if $self->{chunks};
    return bless \%c, ref $self;
}

sub file        { $_[0]{file} }
sub name        { my $f = $_[0]{file}; $f =~ s{.*/}{}; $f =~ s/\.http\z//; $f }
sub raw         { $_[0]{raw} }
sub version     { $_[0]{version} }
sub status      { $_[0]{status} }
sub reason      { $_[0]{reason} }
sub status_line { "HTTP/$_[0]{version} $_[0]{status}" . (length $_[0]{reason} ? " $_[0]{reason}" : '') }
sub headers     { $_[0]{headers} }        # [ [Name, value], ... ] in order
sub is_chunked  { $_[0]{chunked} }
sub chunks      { $_[0]{chunks} }         # [ [ext, data], ... ] or undef
sub trailers    { $_[0]{trailers} }

# The body as on the wire, without chunk framing (may be gzipped when the
# capture itself carries Content-Encoding).
sub body { $_[0]{body} }

# The body without chunk framing and without Content-Encoding.
sub decoded_body {
    my $self = shift;
    return decode_content($self->{body}, $self->header('Content-Encoding'));
}

# First value of a header (case-insensitive), or undef.
sub header {
    my ($self, $name) = @_;
    for (@{ $self->{headers} }) {
        return $_->[1] if lc $_->[0] eq lc $name;
    }
    return undef;
}

# All values of a header.
sub header_all {
    my ($self, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $self->{headers} };
}

# Placeholders present in the capture ({{FESERVER}}, ...).
sub placeholders {
    my $self = shift;
    my %p = map { $_ => 1 } $self->{raw} =~ /\{\{([A-Z0-9_]+)\}\}/g;
    return sort keys %p;
}

sub has_body_framing {
    my $self = shift;
    return 1 if $self->{chunked};
    return defined $self->header('Content-Length') ? 1 : 0;
}

# ---------------------------------------------------------------- encoding

sub decode_content {
    my ($data, $enc) = @_;
    return $data unless defined $enc && length $enc;
    for my $e (reverse split /\s*,\s*/, lc $enc) {
        if ($e eq 'gzip' || $e eq 'x-gzip') {
            my $out;
            IO::Uncompress::Gunzip::gunzip(\$data => \$out, MultiStream => 1)
                or croak "gunzip failed: $IO::Uncompress::Gunzip::GunzipError";
            $data = $out;
        }
        elsif ($e eq 'deflate') {
            my $out = Compress::Zlib::uncompress($data);
            if (!defined $out) {
                # some servers send raw deflate without the zlib wrapper
                my ($i) = Compress::Zlib::inflateInit(-WindowBits => -15);
                ($out) = $i->inflate($data);
            }
            croak "inflate failed" unless defined $out;
            $data = $out;
        }
        elsif ($e eq 'identity' || $e eq '') { }
        else { croak "unknown content-encoding '$e'" }
    }
    return $data;
}

sub gzip_bytes {
    my ($data) = @_;
    my $out;
    IO::Compress::Gzip::gzip(\$data => \$out, Minimal => 1)
        or croak "gzip failed: $IO::Compress::Gzip::GzipError";
    return $out;
}

sub deflate_bytes { Compress::Zlib::compress($_[0]) }   # zlib format

# Chunked framing of $data in chunks of $size bytes (last may be shorter).
sub chunk_bytes {
    my ($data, $size, $trailers) = @_;
    croak "chunk size must be a positive integer" unless $size && $size > 0;
    my $out = '';
    for (my $p = 0; $p < length $data; $p += $size) {
        my $c = substr $data, $p, $size;
        $out .= sprintf("%x\r\n", length $c) . $c . "\r\n";
    }
    return $out . "0\r\n" . ($trailers // '') . "\r\n";
}

# ---------------------------------------------------------------- serialise

# $capture->bytes(%opts): the response bytes to send.
#
#   vars     => { FESERVER => 'EXCH2', FQDN => ..., BESERVER => ... }
#               placeholders to substitute (in headers and body)
#   chunked  => N      re-frame as chunked with N-byte chunks
#   gzip     => 1      gzip the (decoded) body, set Content-Encoding
#   deflate  => 1      zlib-deflate the body, set Content-Encoding
#   status   => 503    replace the status code (reason => 'Text')
#   headers  => { Name => value|[values]|undef }   set (replace) / remove
#   add_headers    => [ [Name, value], ... ]        append
#   remove_headers => [ Name, ... ]
#   body     => $bytes replace the (decoded) body
#   head_only => 1     header block only (answer to HEAD)
#
# With no options (and no placeholders in the file) the result is the
# file's bytes exactly.  With only vars, the capture keeps its framing:
# Content-Length is recomputed, a stored-chunked body keeps its chunk
# boundaries with recomputed sizes.  Any other option re-frames.
sub bytes {
    my ($self, %o) = @_;
    my $vars = $o{vars} || {};
    my $subst = sub {
        my $s = shift;
        $s =~ s/\{\{([A-Z0-9_]+)\}\}/exists $vars->{$1} ? $vars->{$1} : "{{$1}}"/ge;
        return $s;
    };

    my $reframe = grep { defined $o{$_} && $o{$_} }
        qw(chunked gzip deflate);
    $reframe ||= defined $o{body};
    my $edit = $reframe || grep { defined $o{$_} }
        qw(status reason headers add_headers remove_headers);

    if (!$edit) {
        # Keep the file's own formatting: substitute in the raw header
        # block, keep chunk boundaries, fix Content-Length in place.
        my $raw = $self->{raw};
        my $hend = index $raw, "\r\n\r\n";
        my $head = $subst->(substr $raw, 0, $hend + 4);
        my $body;
        if (!%$vars) {
            $body = substr $raw, $hend + 4;
        }
        elsif ($self->{chunked}) {
            $body = $self->_rechunk_substituted($subst);
        }
        else {
            $body = $subst->($self->{body});
        }
        if (!$self->{chunked}) {
            my $len = length $body;
            $head =~ s/(\r\nContent-Length:[ \t]*)\d+/$1$len/i;
        }
        return $head if $o{head_only};
        return $head . $body;
    }

    my @headers = map { [ $_->[0], $subst->($_->[1]) ] } @{ $self->{headers} };
    my $status = $self->{status};
    my $reason = $self->{reason};
    if (defined $o{status}) {
        $status = $o{status};
        $reason = $o{reason} // $REASON{$status} // 'Unknown';
    }
    elsif (defined $o{reason}) {
        $reason = $o{reason};
    }
    my $status_line = "HTTP/$self->{version} $status" . (length $reason ? " $reason" : '');

    my $body;      # wire body, framing included
    if (!$reframe) {
        if ($self->{chunked}) {
            $body = $self->_rechunk_substituted($subst);
        }
        else {
            $body = $subst->($self->{body});
            _set_header(\@headers, 'Content-Length', length $body)
                if defined _get_header(\@headers, 'Content-Length');
        }
    }
    else {
        croak "gzip and deflate are mutually exclusive" if $o{gzip} && $o{deflate};
        my $enc = _get_header(\@headers, 'Content-Encoding');
        $enc = undef if defined $enc && $enc =~ /\A\s*(identity)?\s*\z/i;
        my $content = defined $o{body} ? $o{body} : $subst->($self->decoded_body);
        my $new_enc;
        if ($o{gzip}) {
            $new_enc = 'gzip';
        }
        elsif ($o{deflate}) {
            $new_enc = 'deflate';
        }
        elsif (defined $enc) {
            $new_enc = lc $enc;     # keep the capture's own encoding
        }
        if (defined $new_enc) {
            for my $e (split /\s*,\s*/, $new_enc) {
                $content = $e =~ /gzip/ ? gzip_bytes($content)
                         : $e eq 'deflate' ? deflate_bytes($content)
                         : croak "cannot encode content-encoding '$e'";
            }
        }
        _remove_header(\@headers, 'Content-Encoding');
        if (defined $new_enc) {
            _insert_before_body_headers(\@headers, 'Content-Encoding', $new_enc);
            _add_vary(\@headers) if !defined $enc;
        }
        _remove_header(\@headers, 'Transfer-Encoding');
        _remove_header(\@headers, 'Content-Length');
        if ($o{chunked}) {
            _insert_before_body_headers(\@headers, 'Transfer-Encoding', 'chunked');
            $body = chunk_bytes($content, $o{chunked},
                                $self->{chunked} ? $self->{trailers} : '');
        }
        else {
            _insert_before_body_headers(\@headers, 'Content-Length', length $content);
            $body = $content;
        }
    }

    if (my $h = $o{headers}) {
        for my $name (sort keys %$h) {
            my $v = $h->{$name};
            _remove_header(\@headers, $name);
            next unless defined $v;
            push @headers, [$name, $subst->($_)] for ref $v ? @$v : ($v);
        }
    }
    _remove_header(\@headers, $_) for @{ $o{remove_headers} || [] };
    push @headers, [ $_->[0], $subst->($_->[1]) ] for @{ $o{add_headers} || [] };

    my $head = join '', "$status_line\r\n",
        map({ "$_->[0]: $_->[1]\r\n" } @headers), "\r\n";
    return $head if $o{head_only};
    return $head . $body;
}

# The stored chunk framing, with placeholders substituted inside each
# chunk; a chunk whose data does not change keeps its size line as is.
sub _rechunk_substituted {
    my ($self, $subst) = @_;
    my $body = '';
    for my $c (@{ $self->{chunks} }) {
        my $d = $subst->($c->[1]);
        my $line = $d eq $c->[1] ? $c->[2] : sprintf("%x", length $d) . $c->[0];
        $body .= "$line\r\n$d\r\n";
    }
    return $body . $self->{last_chunk} . "\r\n" . $self->{trailers} . "\r\n";
}

sub _get_header {
    my ($h, $name) = @_;
    for (@$h) { return $_->[1] if lc $_->[0] eq lc $name }
    return undef;
}

sub _set_header {
    my ($h, $name, $value) = @_;
    my $done;
    @$h = grep {
        if (lc $_->[0] eq lc $name) {
            if ($done) { 0 } else { $_->[1] = $value; $done = 1; 1 }
        }
        else { 1 }
    } @$h;
    push @$h, [$name, $value] unless $done;
}

sub _remove_header {
    my ($h, $name) = @_;
    @$h = grep { lc $_->[0] ne lc $name } @$h;
}

# Put body-describing headers where Content-Length/Type usually sit:
# right after Content-Type when present, else at the end.
sub _insert_before_body_headers {
    my ($h, $name, $value) = @_;
    for my $i (0 .. $#$h) {
        if (lc $h->[$i][0] eq 'content-type') {
            splice @$h, $i + 1, 0, [$name, $value];
            return;
        }
    }
    push @$h, [$name, $value];
}

sub _add_vary {
    my ($h) = @_;
    for (@$h) {
        if (lc $_->[0] eq 'vary') {
            $_->[1] .= ', Accept-Encoding' unless $_->[1] =~ /accept-encoding/i;
            return;
        }
    }
    push @$h, ['Vary', 'Accept-Encoding'];
}

# Exchange's HttpProxy names every answer's request (request-id).
sub _guid {
    return sprintf '%08x-%04x-%04x-%04x-%012x', rand(2**32), rand(2**16),
        rand(2**16), rand(2**16), int(rand(2**32)) * 65536 + int(rand(2**16));
}

# A small synthetic response (used for "404" routes and the like): as
# Exchange sends it, with request-id and X-FEServer.
sub synthetic {
    my ($class, %o) = @_;
    my $status = $o{status} // 200;
    my $reason = $o{reason} // $REASON{$status} // 'Unknown';
    my $body = $o{body} // "<html><head><title>$status $reason</title></head>"
        . "<body><h1>$status $reason</h1></body></html>\r\n";
    my @h = (
        ['Content-Type', $o{content_type} // 'text/html'],
        ['Server', 'Microsoft-IIS/10.0'],
        @{ $o{headers} || [] },
        ['X-Powered-By', 'ASP.NET'],
        ['request-id', _guid()],
        ['X-FEServer', '{{FESERVER}}'],
        ['Date', 'Tue, 25 Nov 2025 10:00:00 GMT'],
        ['Content-Length', length $body],
    );
    my $raw = "HTTP/1.1 $status $reason\r\n"
        . join('', map { "$_->[0]: $_->[1]\r\n" } @h) . "\r\n" . $body;
    return $class->parse($raw, file => "(synthetic $status)");
}

1;
