package EH::Client;

# HTTP(S) client for the tests: talks to nginx (or straight to a
# simulated backend) and returns everything it received.  See
# t/lib/README.md.

use strict;
use warnings;

use Carp qw(croak);
use Digest::MD5 qw(md5_hex md5_base64);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64 decode_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

use EH::Capture ();

our $DEFAULT_HOST    = 'mail.contoso.com';
our $DEFAULT_TIMEOUT = 10;

my $SSL_CTX;
# One client TLS context (no verification, no CA store) reused for all
# connections: building one per connection costs tens of milliseconds.
sub _ssl_ctx {
    return $SSL_CTX if $SSL_CTX;
    require IO::Socket::SSL;
    $SSL_CTX = IO::Socket::SSL::SSL_Context->new(
        SSL_verify_mode => 0,
        SSL_ca_file     => undef,
        SSL_ca_path     => undef,
    ) or croak "TLS client context: " . IO::Socket::SSL::errstr();
    return $SSL_CTX;
}

# ---------------------------------------------------------------- cookies

# The cookies a browser signed in to OWA as $user sends.  Values are
# per-user and stable; the backend can tell the user back from cadata.
sub signed_in_cookies {
    my ($user) = @_;
    my $b64 = sub { encode_base64($_[0], '') };
    my $seed = md5_hex("eh-cadata-$user");
    return (
        cadata    => '1' . $b64->("EHUSER:$user:" . $seed . md5_hex($seed)),
        cadataKey => $b64->(pack 'H*', md5_hex("key-$user") x 2),
        cadataIV  => $b64->(pack 'H*', md5_hex("iv-$user") x 2),
        cadataSig => $b64->(pack 'H*', md5_hex("sig-$user")),
        cadataTTL => 'NfVjBm2ZLI8ujcWqpz1MLg==',
    );
}

# How a client signed in as $user proves it, for each way Exchange signs
# users in: cookies (forms: cadata; AD FS: FedAuth and its chunks;
# OpenID Connect: OpenIdConnect.token.v1) or an Authorization header
# (Basic, Bearer).  Returns (cookies => [name, value, ...],
# headers => [[name, value], ...]).  The values carry the user as
# signed_in_cookies' cadata does: the back end reads it back.
our @AUTH = qw(forms adfs oidc basic bearer);

sub credentials {
    my ($user, $auth) = @_;
    $auth //= 'forms';
    my %c = signed_in_cookies($user);
    my $token = $c{cadata};
    return (cookies => [ signed_in_cookies($user) ], headers => [])
        if $auth eq 'forms';
    return (cookies => [ FedAuth => $token,
                         FedAuth1 => encode_base64("chunk-$user", '') ],
            headers => []) if $auth eq 'adfs';
    return (cookies => [ 'OpenIdConnect.token.v1' => $token ], headers => [])
        if $auth eq 'oidc';
    return (cookies => [], headers => [ [ Authorization => 'Basic '
            . encode_base64("CONTOSO\\$user:secret-$user", '') ] ])
        if $auth eq 'basic';
    return (cookies => [], headers => [ [ Authorization => "Bearer $token" ] ])
        if $auth eq 'bearer';
    croak "unknown sign-in '$auth' (have: @AUTH)";
}

# The user name in a cadata value made by signed_in_cookies, else undef.
sub user_from_cadata {
    my ($v) = @_;
    return undef unless defined $v && $v =~ /\A1([A-Za-z0-9+\/=]+)\z/;
    my $d = decode_base64($1);
    return $d =~ /\AEHUSER:(.*):[0-9a-f]{64}\z/s ? $1 : undef;
}

# ---------------------------------------------------------------- object

# EH::Client->new(port => N, tls => 0|1, host => '127.0.0.1',
#                 timeout => 10, keepalive => 0, sni => undef,
#                 defaults => { ...request options... })
sub new {
    my ($class, %o) = @_;
    croak "EH::Client->new: port is required" unless $o{port};
    return bless {
        addr      => $o{addr} // '127.0.0.1',
        port      => $o{port},
        tls       => $o{tls} ? 1 : 0,
        timeout   => $o{timeout} // $DEFAULT_TIMEOUT,
        keepalive => $o{keepalive} ? 1 : 0,
        sni       => $o{sni},
        defaults  => $o{defaults} || {},
        sock      => undef,
    }, $class;
}

sub close {
    my $self = shift;
    if ($self->{sock}) {
        $self->{sock}->close;
        $self->{sock} = undef;
    }
}

sub DESTROY { $_[0]->close }

sub _connect {
    my ($self, %o) = @_;
    my $timeout = $o{timeout};
    my $sock;
    if ($o{tls}) {
        my @ctx = $o{ssl_opts} && %{ $o{ssl_opts} }
            ? (SSL_verify_mode => 0, %{ $o{ssl_opts} })
            : (SSL_reuse_ctx => _ssl_ctx());
        $sock = IO::Socket::SSL->new(
            PeerAddr        => $o{addr},
            PeerPort        => $o{port},
            Timeout         => $timeout,
            SSL_hostname    => $o{sni} // '',
            @ctx,
        ) or return (undef, "TLS connect to $o{addr}:$o{port} failed: "
                            . ($IO::Socket::SSL::SSL_ERROR || $!));
    }
    else {
        $sock = IO::Socket::INET->new(
            PeerAddr => $o{addr},
            PeerPort => $o{port},
            Proto    => 'tcp',
            Timeout  => $timeout,
        ) or return (undef, "connect to $o{addr}:$o{port} failed: $!");
    }
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $sock;
    return ($sock, undef);
}

# ---------------------------------------------------------------- request

# $client->request($method, $path, %opts) or
# EH::Client->request($method, $path, port => N, %opts)
sub request {
    my $self = shift;
    my ($method, $path, %o) = @_;
    if (!ref $self) {
        my %c = map { exists $o{$_} ? ($_ => delete $o{$_}) : () }
            qw(addr port tls timeout sni keepalive);
        $self = $self->new(%c);
    }
    %o = (%{ $self->{defaults} }, %o);
    $method //= defined $o{raw} && $o{raw} =~ /\A(\S+)/ ? $1 : 'GET';
    my $timeout = $o{timeout} // $self->{timeout};
    my $tls  = $o{tls} // $self->{tls};
    my $port = $o{port} // $self->{port};
    my $req  = defined $o{raw} ? $o{raw} : build_request($method, $path,
        %o, keepalive => $self->{keepalive});

    my $start = time;
    my $res = bless {
        request => $req, method => uc($method // 'GET'), reads => [],
        raw => '', error => undef, status => undef, start => $start,
    }, 'EH::Client::Response';

    my $sock = $self->{keepalive} ? $self->{sock} : undef;
    my $reused = $sock ? 1 : 0;
    my $err;
    if (!$sock) {
        ($sock, $err) = $self->_connect(
            addr => $self->{addr}, port => $port, tls => $tls,
            timeout => $timeout, sni => $o{sni} // $self->{sni},
            ssl_opts => $o{ssl_opts});
        if (!$sock) {
            $res->{error} = $err;
            $res->{elapsed} = time - $start;
            return $res;
        }
    }
    $res->{reused_connection} = $reused;
    $res->{peer_cert} = _peer_cert_info($sock) if $tls;

    if (!_write_all($sock, $req, $start + $timeout)) {
        $res->{error} = "write failed: $!";
        $sock->close;
        $self->{sock} = undef;
        $res->{elapsed} = time - $start;
        return $res;
    }

    _read_response($sock, $res, $start + $timeout, $o{head_only_method} // $method);
    $res->{elapsed} = time - $start;

    my $keep = $self->{keepalive} && !$res->{error} && !$res->{closed}
        && !grep { /close/i } @{ $res->{headers}{connection} || [] };
    if ($keep) {
        $self->{sock} = $sock;
    }
    else {
        $sock->close;
        $self->{sock} = undef;
    }
    return $res;
}

sub build_request {
    my ($method, $path, %o) = @_;
    $method = uc($method // 'GET');
    $path //= '/';
    my $version = $o{http_version} // '1.1';
    my @h;
    push @h, ['Host', $o{host} // $DEFAULT_HOST] unless $o{no_host};
    my $hdrs = $o{headers} || [];
    $hdrs = [ map { my $k = $_; my $v = $hdrs->{$k};
                    map { [$k, $_] } ref $v ? @$v : ($v) } sort keys %$hdrs ]
        if ref $hdrs eq 'HASH';
    my %given = map { lc $_->[0] => 1 } @$hdrs;
    push @h, ['User-Agent', $o{user_agent} // 'Mozilla/5.0 (EH test client)']
        unless $given{'user-agent'};
    push @h, ['Accept-Encoding', $o{accept_encoding}]
        if defined $o{accept_encoding};

    my @cookies;
    if ($o{signed_in}) {
        my %cr = credentials($o{signed_in}, $o{auth});
        my @c = @{ $cr{cookies} };
        while (my ($k, $v) = splice @c, 0, 2) { push @cookies, "$k=$v" }
        $hdrs = [ @{ $cr{headers} }, @$hdrs ] if @{ $cr{headers} };
    }
    if (my $c = $o{cookies}) {
        if (ref $c eq 'HASH') { push @cookies, map { "$_=$c->{$_}" } sort keys %$c }
        elsif (ref $c eq 'ARRAY') {
            my @a = @$c;
            while (my ($k, $v) = splice @a, 0, 2) { push @cookies, "$k=$v" }
        }
        else { push @cookies, $c }
    }
    push @h, ['Cookie', join '; ', @cookies] if @cookies;

    push @h, @$hdrs;
    my $body = $o{body};
    if (defined $body) {
        push @h, ['Content-Type', $o{content_type}]
            if defined $o{content_type} && !$given{'content-type'};
        if ($o{chunked_body}) {
            push @h, ['Transfer-Encoding', 'chunked'];
            $body = EH::Capture::chunk_bytes($body, $o{chunked_body});
        }
        elsif (!$given{'content-length'}) {
            push @h, ['Content-Length', length $body];
        }
    }
    elsif ($method =~ /\A(?:POST|PUT|PATCH)\z/ && !$given{'content-length'}) {
        push @h, ['Content-Length', 0];
    }
    if (!$given{connection}) {
        push @h, ['Connection', $o{keepalive} ? 'keep-alive' : 'close']
            if $version eq '1.1' || $o{keepalive};
    }
    return join '', "$method $path HTTP/$version\r\n",
        map({ "$_->[0]: $_->[1]\r\n" } @h), "\r\n", $body // '';
}

# ---------------------------------------------------------------- I/O

sub _write_all {
    my ($sock, $data, $deadline) = @_;
    my $off = 0;
    my $sel = IO::Select->new($sock);
    while ($off < length $data) {
        my $n = syswrite $sock, $data, length($data) - $off, $off;
        if (!defined $n) {
            next if $! == EINTR;
            if ($! == EAGAIN || $! == EWOULDBLOCK) {
                return 0 if time > $deadline;
                $sel->can_write(0.1);
                next;
            }
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Read once, waiting at most until $deadline.  Returns the bytes read,
# '' on EOF, undef on timeout (error in $!).
sub _read_some {
    my ($sock, $deadline) = @_;
    my $sel = IO::Select->new($sock);
    while (1) {
        my $ssl = $sock->isa('IO::Socket::SSL');
        if (!($ssl && $sock->pending)) {
            my $left = $deadline - time;
            return undef if $left <= 0;
            next unless $sel->can_read($left > 0.5 ? 0.5 : $left);
        }
        $sock->blocking(0);
        my $buf;
        my $n = sysread $sock, $buf, 65536;
        $sock->blocking(1);
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            if ($ssl) {
                no warnings 'once';
                my $e = $IO::Socket::SSL::SSL_ERROR;
                next if defined $e && ($e == IO::Socket::SSL::SSL_WANT_READ()
                                    || $e == IO::Socket::SSL::SSL_WANT_WRITE());
            }
            return '';          # reset etc. count as end of stream
        }
        return $buf;
    }
}

sub _read_response {
    my ($sock, $res, $deadline, $method) = @_;
    my $buf = '';
    my $eof = 0;
    my $fill = sub {
        return 0 if $eof;
        my $d = _read_some($sock, $deadline);
        if (!defined $d) {
            $res->{error} //= 'timeout';
            return 0;
        }
        if ($d eq '') { $eof = 1; $res->{closed} = 1; return 0 }
        $res->{first_byte} //= time;
        push @{ $res->{reads} }, [ time, length $d ];
        $res->{raw} .= $d;
        $buf .= $d;
        return 1;
    };

  RESPONSE:
    while (1) {
        my $hend;
        while (($hend = index $buf, "\r\n\r\n") < 0) {
            if (!$fill->()) {
                $res->{error} //= length $buf ? 'incomplete response header'
                                              : 'connection closed without response';
                return $res;
            }
        }
        my $head = substr $buf, 0, $hend + 4, '';
        my @lines = split /\r\n/, substr($head, 0, -4);
        my $sl = shift @lines;
        if ($sl !~ m{\AHTTP/(\d\.\d) (\d{3})(?: (.*))?\z}) {
            $res->{error} = "bad status line: $sl";
            return $res;
        }
        my ($ver, $status, $reason) = ($1, $2, $3 // '');
        my (%h, @list);
        for (@lines) {
            my ($n, $v) = /\A([^:]+):[ \t]*(.*?)[ \t]*\z/ or next;
            push @list, [$n, $v];
            push @{ $h{lc $n} }, $v;
        }
        if ($status =~ /\A1/ && $status != 101) {
            push @{ $res->{interim} }, { status => $status, headers => \%h };
            next RESPONSE;
        }
        @$res{qw(version status reason headers header_list raw_head)} =
            ($ver, $status + 0, $reason, \%h, \@list, $head);
        last;
    }

    my $h = $res->{headers};
    my $te = join ',', @{ $h->{'transfer-encoding'} || [] };
    my $cl = $h->{'content-length'} ? $h->{'content-length'}[0] : undef;
    my $no_body = $method eq 'HEAD' || $res->{status} == 204
        || $res->{status} == 304;

    if ($no_body) {
        $res->{raw_body} = '';
    }
    elsif ($te =~ /chunked/i) {
        $res->{chunked} = 1;
        my $pos = 0;
        my $data = '';
        my @sizes;
        while (1) {
            my $eol;
            while (($eol = index $buf, "\r\n", $pos) < 0) {
                if (!$fill->()) { $res->{error} //= 'incomplete chunked body'; last }
            }
            last if $eol < 0;
            my $line = substr $buf, $pos, $eol - $pos;
            if ($line !~ /\A([0-9a-fA-F]+)/) {
                $res->{error} = "bad chunk size line '$line'";
                last;
            }
            my $size = hex $1;
            push @sizes, $size;
            $pos = $eol + 2;
            if ($size == 0) {
                # trailers until an empty line
                my $done = 0;
                while (1) {
                    my $e;
                    while (($e = index $buf, "\r\n", $pos) < 0) {
                        last if !$fill->();
                    }
                    if ($e < 0) { $res->{error} //= 'incomplete chunked trailer'; last }
                    my $tl = substr $buf, $pos, $e - $pos;
                    $pos = $e + 2;
                    if ($tl eq '') { $done = 1; last }
                    push @{ $res->{trailers} }, $tl;
                }
                last;
            }
            while (length($buf) < $pos + $size + 2) {
                if (!$fill->()) { $res->{error} //= 'incomplete chunk'; last }
            }
            last if length($buf) < $pos + $size + 2;
            $data .= substr $buf, $pos, $size;
            $pos += $size + 2;
        }
        $res->{chunk_sizes} = \@sizes;
        $res->{raw_body} = substr $buf, 0, $pos;
        $res->{body_encoded} = $data;
    }
    elsif (defined $cl) {
        while (length $buf < $cl) {
            if (!$fill->()) {
                $res->{error} //= sprintf 'body truncated: %d of %d bytes',
                    length $buf, $cl;
                last;
            }
        }
        $res->{raw_body} = substr $buf, 0, $cl;
    }
    else {
        1 while $fill->();
        $res->{raw_body} = $buf;
    }
    $res->{body_encoded} //= $res->{raw_body};

    my $enc = join ',', @{ $h->{'content-encoding'} || [] };
    $res->{content_encoding} = $enc if length $enc;
    my $body = eval { EH::Capture::decode_content($res->{body_encoded}, $enc) };
    if (!defined $body) {
        $res->{decode_error} = $@;
        $body = $res->{body_encoded};
    }
    $res->{body} = $body;
    return $res;
}

sub _peer_cert_info {
    my ($sock) = @_;
    return undef unless $sock->can('peer_certificate');
    my $cn = $sock->peer_certificate('cn');
    my $pem;
    if (my $x = $sock->peer_certificate) {
        $pem = Net::SSLeay::PEM_get_string_X509($x);
    }
    return { cn => $cn, pem => $pem,
             subject => scalar $sock->peer_certificate('subject'),
             issuer  => scalar $sock->peer_certificate('issuer') };
}

# ---------------------------------------------------------------- raw

# EH::Client::raw_exchange(port => N, data => $bytes, tls => 0,
#     timeout => 10, half_close => 0)
# Sends bytes and returns everything received until the peer closes (or
# the timeout).  In list context also returns [ [time, bytes], ... ] of
# the individual reads.
sub raw_exchange {
    my (%o) = @_;
    my $timeout = $o{timeout} // $DEFAULT_TIMEOUT;
    my ($sock, $err) = __PACKAGE__->_connect(
        addr => $o{addr} // '127.0.0.1', port => $o{port}, tls => $o{tls},
        timeout => $timeout, sni => $o{sni});
    croak $err unless $sock;
    my $start = time;
    _write_all($sock, $o{data} // '', $start + $timeout)
        or croak "raw_exchange: write failed: $!";
    shutdown($sock, 1) if $o{half_close} && !$o{tls};
    my ($all, @reads) = ('');
    while (1) {
        my $d = _read_some($sock, $start + $timeout);
        last if !defined $d || $d eq '';
        push @reads, [ time, $d ];
        $all .= $d;
    }
    $sock->close;
    return wantarray ? ($all, \@reads) : $all;
}

package EH::Client::Response;

# Hash fields: status reason version headers{lc name => [values]}
# header_list [[Name, value]...] raw raw_head raw_body body_encoded body
# chunked chunk_sizes trailers content_encoding error start elapsed
# first_byte reads [[time, length]...] closed interim peer_cert request

sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{lc $name} or return undef;
    return $v->[0];
}

sub header_all {
    my ($self, $name) = @_;
    return @{ $self->{headers}{lc $name} || [] };
}

sub status { $_[0]{status} }
sub body   { $_[0]{body} }
sub error  { $_[0]{error} }

# One line for test names / diagnostics.
sub summary {
    my $self = shift;
    return "error: $self->{error}" if !defined $self->{status};
    my $s = "$self->{status} $self->{reason}";
    my $fe = $self->header('X-FEServer');
    $s .= " (X-FEServer: $fe)" if defined $fe;
    $s .= " [error: $self->{error}]" if $self->{error};
    return $s;
}

1;
