package EH::Backend;

# One simulated Exchange server.  See t/lib/README.md for the API and the
# route table format.

use strict;
use warnings;

use Carp qw(croak carp);
use Digest::MD5 qw(md5_hex);
use Errno qw(EINTR EAGAIN EWOULDBLOCK);
use Fcntl qw(:flock SEEK_END);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use MIME::Base64 ();
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);

use EH::Util qw(run_dir listen_socket slurp spew_atomic json_encode
                json_decode wait_until register_cleanup in_creator);
use EH::Capture ();
use EH::Client ();
use EH::Cert ();

# ---------------------------------------------------------------- presets

my $OWA_SERVICE = '^/owa/(?:service\.svc|[^?]*\.oeh(?:[/?]|$))';

our @HEALTHY = (
    { name => 'owa-auth', method => 'POST', path => '^/owa/auth\.owa(?:[?]|$)',
      signin => 1 },
    { name => 'healthcheck', path => '^/[^/?]+/healthcheck\.htm(?:[?]|$)',
      capture => 'healthcheck' },
    { name => 'owa-errorfe', path => '^/owa/auth/errorfe\.aspx(?:[?]|$)',
      capture => 'errorfe-page-en' },
    { name => 'owa-script', path => '^/owa/prem/', capture => 'owa-script' },
    { name => 'owa-service', signed_in => 1, path => $OWA_SERVICE,
      capture => 'owa-service-ok' },
    { name => 'owa-logon', signed_in => 0, path => '^/owa/auth/logon\.aspx(?:[?]|$)',
      capture => 'owa-logon' },
    { name => 'owa-page', signed_in => 1, path => '^/owa(?:[/?]|$)',
      capture => 'owa-signed-in' },
    { name => 'owa-unsigned', signed_in => 0, path => '^/owa(?:[/?]|$)',
      capture => 'owa-redirect-logon' },
    { name => 'ecp-page', signed_in => 1, path => '^/ecp(?:[/?]|$)',
      capture => 'ecp-page' },
    { name => 'ecp-unsigned', signed_in => 0, path => '^/ecp(?:[/?]|$)',
      capture => 'owa-redirect-logon' },
    { name => 'eas', path => '^/Microsoft-Server-ActiveSync(?:[/?]|$)',
      capture => 'eas-options', basic => 1 },
    { name => 'ews', path => '^/EWS/', capture => 'ews-ok', basic => 1 },
    # MAPI over HTTP's PING (MS-OXCMAPIHTTP 2.2.6): no body either way,
    # X-ResponseCode 0 says the endpoint works
    { name => 'mapi-ping', method => 'POST', path => '^/mapi/emsmdb/',
      match_headers => { 'x-requesttype' => '^PING$' }, basic => 1,
      status => 200, body => '',
      add_headers => [ [ 'X-RequestType' => 'PING' ], [ 'X-ResponseCode' => '0' ],
                       [ 'X-ServerApplication' => 'Exchange/15.01.2507.006' ],
                       [ 'X-CalculatedBETarget' => '{{FQDN}}' ],
                       [ 'X-BEServer' => '{{BESERVER}}' ] ] },
    { name => 'not-found', status => 404 },
);

sub _healthy_with {
    my (%over) = @_;
    return map {
        my %r = %$_;
        if (my $o = $over{ $r{name} }) { %r = (%r, %$o, name => "$o->{prefix}$r{name}") }
        delete $r{prefix};
        \%r;
    } @HEALTHY;
}

# The seed failure: Exchange 2016 with its OAuth "Auth" certificate
# missing.  Signed-in OWA/ECP breaks; logon, healthcheck, EAS, EWS work.
our %PRESETS = (
    healthy => [ @HEALTHY ],
    seed => [ _healthy_with(
        'owa-service' => { prefix => 'seed-', capture => 'owa-service-500' },
        'owa-page'    => { prefix => 'seed-', capture => 'errorfe-redirect' },
        'ecp-page'    => { prefix => 'seed-', capture => 'ecp-json-500' },
    ) ],
    # EWS fails for every user (ErrorInternalServerError), OWA works.
    'ews-broken' => [ _healthy_with(
        ews => { prefix => 'broken-', capture => 'ews-500-internal' },
    ) ],
    # MAPI over HTTP answers 500 (as EH::Day's mapi-500), the rest works.
    'mapi-broken' => [ _healthy_with(
        'mapi-ping' => { prefix => 'broken-', status => 500,
                         add_headers => [ [ 'X-ResponseCode' => '1' ] ] },
    ) ],
    # ActiveSync's application fails (IIS's 500 page), the rest works.
    'activesync-broken' => [ _healthy_with(
        eas => { prefix => 'broken-', capture => 'iis-500' },
    ) ],
    # The server cannot validate OAuth tokens: every Bearer request is
    # refused as invalid_token; forms, Basic and Windows sign-in work.
    'bearer-broken' => [
        { name => 'bearer-refused', path => '^/(?:EWS|mapi|Microsoft-Server-ActiveSync|oab)(?:[/?]|$)',
          match_headers => { authorization => '^Bearer ' },
          capture => 'ews-401-invalid-token' },
        @HEALTHY ],
    # Exchange maintenance mode: healthcheck.htm drops the connection.
    maintenance => [ _healthy_with(
        healthcheck => { prefix => 'maintenance-', close => 1, capture => undef },
    ) ],
    # Accepts connections but closes each without a response.
    dead => [ { name => 'dead', close => 1 } ],
);

# Route keys.  Matching:
my %MATCH_KEYS = map { $_ => 1 } qw(method path signed_in user match_headers
                                    case_sensitive);
# Actions:
my %ACTION_KEYS = map { $_ => 1 } qw(name capture status reason body headers
    add_headers remove_headers chunked gzip deflate delay trickle split
    split_pause close reset truncate raw vars keepalive beserver ntlm
    read_body signin basic);

# A body longer than this is logged as its first bytes, its length and
# its MD5: decoding the log stays quick.
my $LOG_BODY = 1 << 20;

# ---------------------------------------------------------------- object

my %LIVE;     # pid => weak ref, for END cleanup

# EH::Backend->new(name => 'EXCH2', tls => 0|1, preset => 'healthy',
#     routes => [...], fqdn => ..., beserver => ..., cert => {...},
#     port => N, start => 1)
sub new {
    my ($class, %o) = @_;
    my $name = $o{name} // 'EXCH1';
    my $self = bless {
        name     => $name,
        fqdn     => $o{fqdn} // lc($name) . '.contoso.local',
        beserver => $o{beserver} // $name,
        tls      => $o{tls} ? 1 : 0,
        cert     => $o{cert},
        port     => $o{port},
        pid      => undef,
        gen      => 0,
        vars     => $o{vars} || {},
    }, $class;
    if ($self->{tls} && !$self->{cert}) {
        $self->{cert} = EH::Cert::make(cn => $self->{fqdn},
                                       san => [$self->{fqdn}, 'IP:127.0.0.1']);
    }
    $self->{dir} = run_dir() . "/backend-$name-" . int(rand 1e9);
    make_path($self->{dir});
    $self->{behaviour_file} = "$self->{dir}/behaviour.json";
    $self->{log_file} = "$self->{dir}/requests.log";
    open my $fh, '>', $self->{log_file} or croak "$self->{log_file}: $!";
    close $fh;
    if ($o{routes}) { $self->routes(@{ $o{routes} }) }
    else            { $self->preset($o{preset} // 'healthy') }
    $self->start unless defined $o{start} && !$o{start};
    return $self;
}

sub name  { $_[0]{name} }
sub fqdn  { $_[0]{fqdn} }
sub tls   { $_[0]{tls} }
sub port  { $_[0]{port} }
sub addr  { "127.0.0.1:$_[0]{port}" }
sub cert  { $_[0]{cert} }              # { cert => path, key => path, ... }
sub dir   { $_[0]{dir} }
sub pid   { $_[0]{pid} }
sub scheme { $_[0]{tls} ? 'https' : 'http' }
sub url   { my ($s, $p) = @_; $s->scheme . "://127.0.0.1:$s->{port}" . ($p // '/') }
sub vars  {
    my $s = shift;
    return { FESERVER => $s->{name}, FQDN => $s->{fqdn},
             BESERVER => $s->{beserver}, %{ $s->{vars} } };
}

# ---------------------------------------------------------------- behaviour

# preset($name, prepend => [routes], strip => [names]): the preset's
# table with routes in front of it and the headers it strips, written at
# once, so that no request meets a table half changed.
sub preset {
    my ($self, $name, %o) = @_;
    my $p = $PRESETS{$name} or croak "unknown preset '$name' (have: "
        . join(', ', sort keys %PRESETS) . ")";
    $self->{preset} = $name;
    $self->{strip} = [ @{ $o{strip} } ] if $o{strip};
    return $self->_write_routes([ @{ $o{prepend} || [] },
                                  map { +{%$_} } @$p ]);
}

# Break the server: preset 'seed' unless another preset is named.
sub break { my ($self, $preset) = @_; $self->preset($preset // 'seed') }

# Back to a healthy Exchange server.
sub heal { $_[0]->preset('healthy') }

# Replace the whole route table.
sub routes {
    my ($self, @routes) = @_;
    $self->{preset} = undef;
    return $self->_write_routes([ @routes ]);
}

# Put routes in front of the current table (they win).
sub prepend {
    my ($self, @routes) = @_;
    return $self->_write_routes([ @routes, @{ $self->{routes} } ]);
}

# Add routes at the end of the current table.
sub append {
    my ($self, @routes) = @_;
    return $self->_write_routes([ @{ $self->{routes} }, @routes ]);
}

# The accounts forms sign-in (POST /owa/auth.owa, route key signin) and
# Basic (routes with key basic: EWS, ActiveSync, MAPI) accept:
# user => password.  None set: any user and password sign in.
sub accounts {
    my ($self, %acc) = @_;
    $self->{accounts} = { %acc };
    return $self->_write_routes($self->{routes});
}

# The server's EWS, ActiveSync and MAPI (routes with key basic) take
# Windows sign-in only, NTLM or Negotiate, as a farm without Basic: on
# (1) or off (0).  The accounts' NTLMv2 is checked for real (_ntlm).
sub windows {
    my ($self, $on) = @_;
    $self->{windows} = $on ? 1 : 0;
    return $self->_write_routes($self->{routes});
}

# Extended Protection on the server's Windows sign-in (windows(1)):
# 'require' refuses, with 401 as IIS does, an AUTHENTICATE of one of the
# accounts without the channel binding token of this server's own
# certificate, or without its MIC (EH::Ntlm::ep_refusal); 'none' (the
# default) checks neither.
sub extended_protection {
    my ($self, $mode) = @_;
    $self->{ep} = $mode // 'none';
    return $self->_write_routes($self->{routes});
}

# Headers this server never sends, whatever the route: a farm whose IIS
# outbound rules strip the names of its servers (X-BEServer,
# X-CalculatedBETarget, X-DiagInfo, X-FEServer).  No names: send all.
sub strip {
    my ($self, @names) = @_;
    $self->{strip} = [ @names ];
    return $self->_write_routes($self->{routes});
}

# The current route table (copies).
sub table { [ map { +{%$_} } @{ $_[0]{routes} } ] }
sub current_preset { $_[0]{preset} }

sub _write_routes {
    my ($self, $routes) = @_;
    my @out;
    my $i = 0;
    for my $r (@$routes) {
        croak "route $i is not a hash" unless ref $r eq 'HASH';
        my %r = %$r;
        for my $k (sort keys %r) {
            croak "route $i: unknown key '$k'" unless $MATCH_KEYS{$k} || $ACTION_KEYS{$k};
        }
        $r{path} = "$r{path}" if ref $r{path} eq 'Regexp';
        if (my $mh = $r{match_headers}) {
            $r{match_headers} = { map { lc($_) => "$mh->{$_}" } keys %$mh };
        }
        if (defined $r{capture}) {
            EH::Capture->find($r{capture})
                or croak "route $i: capture '$r{capture}' not found";
            EH::Capture->load($r{capture});        # dies when malformed
        }
        if (defined $r{split}) {
            croak "route $i: split wants an array of byte offsets"
                unless ref $r{split} eq 'ARRAY';
        }
        if (defined $r{trickle}) {
            croak "route $i: trickle wants [bytes_per_write, seconds]"
                unless ref $r{trickle} eq 'ARRAY' && @{ $r{trickle} } == 2;
        }
        croak "route $i: gzip must be 1 or 'auto'"
            if defined $r{gzip} && $r{gzip} !~ /\A(?:0|1|auto)\z/;
        push @out, \%r;
        $i++;
    }
    $self->{routes} = \@out;
    $self->{gen}++;
    spew_atomic($self->{behaviour_file},
                json_encode({ gen => $self->{gen}, routes => \@out,
                              strip => $self->{strip} || [],
                              accounts => $self->{accounts},
                              windows => $self->{windows},
                              ep => $self->{ep} // 'none' }));
    return $self;
}

# ---------------------------------------------------------------- log

# All logged requests (oldest first), optionally filtered:
#   path => qr// or string regex (on path with query), method => 'GET',
#   signed_in => 0|1, user => 'alice', route => 'owa-page',
#   capture => name, since => epoch seconds
sub requests {
    my ($self, %f) = @_;
    open my $fh, '<', $self->{log_file} or return ();
    flock $fh, LOCK_SH;
    my @all;
    while (my $l = <$fh>) {
        chomp $l;
        next unless length $l;
        my $e = eval { json_decode($l) } or next;
        push @all, $e;
    }
    close $fh;
    return _filter(\@all, %f);
}

sub _filter {
    my ($all, %f) = @_;
    my $re = defined $f{path} ? (ref $f{path} ? $f{path} : qr/$f{path}/i) : undef;
    return grep {
        (!$re || $_->{target} =~ $re)
        && (!defined $f{method} || uc $_->{method} eq uc $f{method})
        && (!defined $f{signed_in} || $_->{signed_in} == ($f{signed_in} ? 1 : 0))
        && (!defined $f{user} || ($_->{user} // '') eq $f{user})
        && (!defined $f{route} || ($_->{route} // '') eq $f{route})
        && (!defined $f{capture} || ($_->{capture} // '') eq $f{capture})
        && (!defined $f{since} || $_->{time} >= $f{since})
    } @$all;
}

sub hits { my $self = shift; return scalar(my @r = $self->requests(@_)) }

sub last_request { my @r = $_[0]->requests; return $r[-1] }

# Wait until at least $n requests (matching the filters) are logged;
# returns the count (which is < $n after the timeout, default 5 s).
sub wait_hits {
    my ($self, $n, %f) = @_;
    my $timeout = delete $f{timeout} // 5;
    my $count = 0;
    wait_until(sub { ($count = $self->hits(%f)) >= $n }, timeout => $timeout);
    return $count;
}

sub clear_log {
    my $self = shift;
    open my $fh, '+<', $self->{log_file} or croak "$self->{log_file}: $!";
    flock $fh, LOCK_EX;
    truncate $fh, 0;
    close $fh;
    return $self;
}

# ---------------------------------------------------------------- process

sub start {
    my ($self) = @_;
    croak "backend $self->{name} already running" if $self->is_running;
    my $ls = listen_socket(defined $self->{port} ? (port => $self->{port}) : ());
    $self->{port} = $ls->sockport;
    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        my $ok = eval { $self->_serve($ls); 1 };
        print STDERR "# EH backend $self->{name}: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    close $ls;
    $self->{pid} = $pid;
    $LIVE{$pid} = $self;
    weaken $LIVE{$pid};
    return $self;
}

sub is_running {
    my $self = shift;
    return 0 unless $self->{pid};
    return kill(0, $self->{pid}) && waitpid($self->{pid}, WNOHANG) == 0;
}

# Stop the server: the listener and every open connection go away.
sub stop {
    my $self = shift;
    my $pid = delete $self->{pid} or return $self;
    delete $LIVE{$pid};
    _kill_group($pid);
    return $self;
}

sub _kill_group {
    my ($pid) = @_;
    local $?;
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    my $end = time + 3;
    while (time < $end) {
        last if waitpid($pid, WNOHANG) != 0;
        sleep 0.01;
    }
    kill 'KILL', -$pid;
    if (kill 0, $pid) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}

# Restart on the same port (after stop).
sub restart { my $s = shift; $s->stop; $s->start }

sub DESTROY {
    my $self = shift;
    return unless in_creator();
    $self->stop if $self->{pid};
}

register_cleanup(sub {
    for my $pid (keys %LIVE) {
        my $b = $LIVE{$pid};
        if ($b) { $b->stop } else { _kill_group($pid) }
    }
});

# ================================================================ child side

# Spare worker processes kept waiting for connections, and the cap.
our $MIN_SPARE   = 2;
our $MAX_WORKERS = 256;

sub _serve {
    my ($self, $ls) = @_;
    setpgrp(0, 0);
    EH::Util::die_with_parent('TERM');
    $0 = "eh-backend $self->{name} :$self->{port}";
    $SIG{PIPE} = 'IGNORE';
    $SIG{$_} = sub { POSIX::_exit(0) } for qw(TERM INT HUP);
    if ($self->{tls}) {
        require IO::Socket::SSL;
        # One context for all connections (made before any fork): loads
        # the certificate once and fails early when it is bad.
        $self->{ssl_ctx} = IO::Socket::SSL::SSL_Context->new(
            SSL_server      => 1,
            SSL_cert_file   => $self->{cert}{cert},
            SSL_key_file    => $self->{cert}{key},
            SSL_verify_mode => 0,
            SSL_ca_file     => undef,
            SSL_ca_path     => undef,
        ) or die "bad certificate: " . IO::Socket::SSL::errstr() . "\n";
    }
    $self->_load_routes;
    $self->{conn_file} = "$self->{dir}/connections";
    # connection numbers go on counting across stop/start
    _spew_counter($self->{conn_file}, 0) unless -e $self->{conn_file};

    # Pre-forked workers accept connections themselves (forking per
    # connection costs ~15 ms of copy-on-write faults).  They report
    # "busy"/"idle" through a pipe; the manager keeps spares around.
    pipe(my $rd, my $wr) or die "pipe: $!\n";
    my %state;                      # worker pid => 'idle' | 'busy'
    my $spawn = sub {
        $self->_load_routes;        # workers start with the current table
        my $pid = fork;
        return unless defined $pid;
        if (!$pid) {
            close $rd;
            EH::Util::die_with_parent('TERM');
            $SIG{$_} = sub { POSIX::_exit(0) } for qw(TERM INT HUP);
            $SIG{CHLD} = 'DEFAULT';
            $self->_worker($ls, $wr);
            POSIX::_exit(0);
        }
        $state{$pid} = 'idle';
    };
    $SIG{CHLD} = 'DEFAULT';
    # On stop: take the workers down with the manager and reap them.
    $SIG{$_} = sub {
        kill 'TERM', keys %state;
        my $end = time + 1;
        while (%state && time < $end) {
            my $pid = waitpid(-1, WNOHANG);
            if ($pid > 0) { delete $state{$pid} } else { sleep 0.01 }
        }
        kill 'KILL', keys %state;
        POSIX::_exit(0);
    } for qw(TERM INT HUP);
    $spawn->() for 1 .. $MIN_SPARE + 1;
    my $sel = IO::Select->new($rd);
    while (1) {
        while ((my $pid = waitpid(-1, WNOHANG)) > 0) { delete $state{$pid} }
        my $idle = grep { $_ eq 'idle' } values %state;
        while ($idle < $MIN_SPARE && keys(%state) < $MAX_WORKERS) {
            $spawn->();
            $idle++;
        }
        next unless $sel->can_read(0.5);
        my $n = sysread $rd, my $msg, 5 * 64;
        next unless $n;
        for my $rec (unpack '(a5)*', $msg) {
            my ($type, $pid) = unpack 'aN', $rec;
            $state{$pid} = $type eq 'B' ? 'busy' : 'idle' if exists $state{$pid};
        }
    }
}

sub _spew_counter {
    my ($file, $n) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print $fh $n;
    close $fh;
}

sub _next_conn {
    my ($self) = @_;
    open my $fh, '+<', $self->{conn_file} or die "$self->{conn_file}: $!\n";
    flock $fh, LOCK_EX;
    my $n = <$fh> // 0;
    $n++;
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh $n;
    close $fh;
    return $n;
}

sub _worker {
    my ($self, $ls, $wr) = @_;
    my $tell = sub { syswrite $wr, pack('aN', $_[0], $$) };
    while (1) {
        $0 = "eh-backend $self->{name} :$self->{port} idle";
        my $c = $ls->accept;
        if (!$c) {
            next if $! == EINTR;
            die "accept: $!\n";
        }
        $tell->('B');
        my $conn = $self->_next_conn;
        my $ok = eval { $self->_handle($c, $conn); 1 };
        alarm 0;
        print STDERR "# EH backend $self->{name} conn $conn: $@"
            if !$ok && $@ !~ /^EH-(?:idle|eof)/;
        close $c;
        $tell->('I');
    }
}

# Re-read the behaviour file when it changed.
sub _load_routes {
    my ($self) = @_;
    # The file is small: compare its contents (stat times are too coarse
    # for changes made in quick succession).
    my $text = slurp($self->{behaviour_file});
    return $self->{child_routes}
        if $self->{child_routes} && $text eq ($self->{child_text} // '');
    my $data = json_decode($text);
    my @routes;
    for my $r (@{ $data->{routes} }) {
        my %r = %$r;
        if (defined $r{path}) {
            my $p = $r{path};
            $r{path_re} = $r{case_sensitive} ? qr/$p/ : qr/$p/i;
        }
        if (my $mh = $r{match_headers}) {
            $r{match_headers_re} = { map { $_ => qr/$mh->{$_}/i } keys %$mh };
        }
        EH::Capture->load($r{capture}) if defined $r{capture};   # warm cache
        push @routes, \%r;
    }
    $self->{child_strip} = $data->{strip} || [];
    $self->{child_accounts} = $data->{accounts};
    $self->{child_windows} = $data->{windows};
    $self->{child_ep} = $data->{ep} // 'none';
    $self->{child_routes} = \@routes;
    $self->{child_gen} = $data->{gen};
    $self->{child_text} = $text;
    return \@routes;
}

# -------------------------------------------------------- connection

sub _handle {
    my ($self, $sock, $conn) = @_;
    $0 = "eh-backend $self->{name} :$self->{port} conn $conn";
    my $peer_port = $sock->peerport;
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $SIG{ALRM} = sub { die "EH-idle\n" };
    alarm 300;
    if ($self->{tls}) {
        IO::Socket::SSL->start_SSL($sock,
            SSL_server    => 1,
            SSL_reuse_ctx => $self->{ssl_ctx},
            Timeout       => 10,
        ) or die "EH-eof TLS handshake failed\n";
    }
    binmode $sock;
    my $io = { sock => $sock, buf => '' };
    my $n = 0;
    while (1) {
        alarm 300;
        my $req = _read_request($io, sub { $self->_read_body($_[0]) })
            or last;
        alarm 0;
        $n++;
        my $keep = $self->_respond($io, $req, $conn, $n, $peer_port);
        last unless $keep && !$req->{partial};
    }
    alarm 0;
    close $sock;
}

sub _fill {
    my ($io) = @_;
    while (1) {
        my $n = sysread $io->{sock}, my $d, 65536;
        if (!defined $n) {
            next if $! == EINTR;
            return 0;
        }
        return 0 if $n == 0;
        $io->{buf} .= $d;
        return 1;
    }
}

# How much of a request's body its route reads (read_body), undef: all.
sub _read_body {
    my ($self, $req) = @_;
    _who($req);
    my (undef, $r) = $self->_match($req);
    return $r->{read_body};
}

sub _read_request {
    my ($io, $limit_of) = @_;
    my $hend;
    while (1) {
        $io->{buf} =~ s/\A(?:\r?\n)+//;
        $hend = index $io->{buf}, "\r\n\r\n";
        last if $hend >= 0;
        return undef unless _fill($io);
    }
    my $head = substr $io->{buf}, 0, $hend + 4, '';
    my @lines = split /\r\n/, substr($head, 0, -4);
    my $rl = shift @lines;
    my ($method, $target, $version) = $rl =~ m{\A(\S+) (\S+) HTTP/(\d\.\d)\z}
        or return { bad => $rl, method => '', target => '', version => '1.0',
                    headers => {}, header_list => [], body => '' };
    my (%h, @list);
    for (@lines) {
        my ($k, $v) = /\A([^:]+):[ \t]*(.*?)[ \t]*\z/ or next;
        push @list, [$k, $v];
        push @{ $h{lc $k} }, $v;
    }
    my $req = { method => $method, target => $target, version => $version,
                headers => \%h, header_list => \@list, body => '',
                head => $head };
    if (grep { /100-continue/i } @{ $h{expect} || [] }) {
        _write_all($io->{sock}, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    my $te = join ',', @{ $h{'transfer-encoding'} || [] };
    if ($te =~ /chunked/i) {
        $req->{chunked_body} = 1;
        while (1) {
            my $eol;
            while (($eol = index $io->{buf}, "\r\n") < 0) { _fill($io) or die "EH-eof\n" }
            my $line = substr $io->{buf}, 0, $eol + 2, '';
            my ($size) = $line =~ /\A([0-9a-fA-F]+)/ or die "EH-eof bad chunk\n";
            $size = hex $size;
            if ($size == 0) {
                while (1) {
                    while (($eol = index $io->{buf}, "\r\n") < 0) { _fill($io) or die "EH-eof\n" }
                    my $t = substr $io->{buf}, 0, $eol + 2, '';
                    last if $t eq "\r\n";
                }
                last;
            }
            while (length $io->{buf} < $size + 2) { _fill($io) or die "EH-eof\n" }
            $req->{body} .= substr $io->{buf}, 0, $size;
            substr $io->{buf}, 0, $size + 2, '';
        }
    }
    elsif (my $cl = $h{'content-length'}) {
        my $len = $cl->[0] + 0;
        my $limit = $limit_of ? $limit_of->($req) : undef;
        if (defined $limit && $limit < $len) {
            # the rest is never read: the connection closes after the answer
            $len = $limit;
            $req->{partial} = 1;
        }
        while (length $io->{buf} < $len) { _fill($io) or die "EH-eof\n" }
        $req->{body} = substr $io->{buf}, 0, $len, '';
    }
    return $req;
}

sub _cookies {
    my ($req) = @_;
    my %c;
    for my $line (@{ $req->{headers}{cookie} || [] }) {
        for my $pair (split /;\s*/, $line) {
            my ($k, $v) = split /=/, $pair, 2;
            next unless defined $k && length $k;
            $k =~ s/^\s+|\s+$//g;
            $c{$k} //= $v // '';
        }
    }
    return \%c;
}

# How the request is signed in, as Exchange would see it: the session
# cookie of forms (cadata), AD FS (FedAuth) or OpenID Connect, else an
# Authorization header of Basic or Bearer (NTLM and Negotiate sign in a
# connection: see _ntlm).  Any value counts, as a server that cannot tell
# a made-up one before it asks its mailbox would; routes and presets say
# what each gets.  Returns (method, credential) or ().
sub _sign_in {
    my ($req, $cookies) = @_;
    for ([forms => 'cadata'], [adfs => 'FedAuth'],
         [oidc => 'OpenIdConnect.token.v1']) {
        my $v = $cookies->{ $_->[1] };
        return ($_->[0], $v) if defined $v && length $v;
    }
    my ($a) = @{ $req->{headers}{authorization} || [] };
    return () unless defined $a;
    return (basic => $1) if $a =~ /\ABasic\s+(\S+)/i;
    return (bearer => $1) if $a =~ /\ABearer\s+(\S+)/i;
    return ();
}

sub _user_of {
    my ($auth, $cred) = @_;
    if ($auth eq 'basic') {
        my $d = MIME::Base64::decode_base64($cred);
        return $d =~ /\A(?:[^\\:]*\\)?([^:]+):/ ? $1 : $cred;
    }
    return EH::Client::user_from_cadata($cred) // $cred;
}

sub _match {
    my ($self, $req) = @_;
    my $routes = $self->_load_routes;
    for my $i (0 .. $#$routes) {
        my $r = $routes->[$i];
        next if defined $r->{method} && $req->{method} !~ /\A(?:$r->{method})\z/i;
        next if $r->{path_re} && $req->{target} !~ $r->{path_re};
        next if defined $r->{signed_in} && ($r->{signed_in} ? 1 : 0) != $req->{signed_in};
        next if defined $r->{user} && ($req->{user} // '') ne $r->{user};
        if (my $mh = $r->{match_headers_re}) {
            my $ok = 1;
            for my $k (keys %$mh) {
                my $v = join ', ', @{ $req->{headers}{$k} || [] };
                $ok = 0, last unless @{ $req->{headers}{$k} || [] } && $v =~ $mh->{$k};
            }
            next unless $ok;
        }
        return ($i, $r);
    }
    return (-1, { name => 'no-route', status => 404 });
}

sub _accepts_gzip {
    my ($req) = @_;
    my $ae = join ',', @{ $req->{headers}{'accept-encoding'} || [] };
    for my $tok (split /\s*,\s*/, $ae) {
        my ($coding, @params) = split /\s*;\s*/, $tok;
        next unless defined $coding && ($coding =~ /\A(?:x-)?gzip\z/i || $coding eq '*');
        my ($q) = map { /\Aq=([\d.]+)\z/i ? $1 : () } @params;
        return 1 if !defined $q || $q > 0;
    }
    return 0;
}

# Who sends the request: signed_in, user and how (auth), from its
# sign-in cookie or credentials.
sub _who {
    my ($req) = @_;
    my $cookies = _cookies($req);
    my $cadata = $cookies->{cadata};
    my ($auth, $cred) = _sign_in($req, $cookies);
    $req->{auth} = $auth;
    $req->{signed_in} = defined $cred && length $cred ? 1 : 0;
    $req->{user} = $req->{signed_in} ? _user_of($auth, $cred) : undef;
    return ($cookies, $cadata);
}

sub _respond {
    my ($self, $io, $req, $conn, $n, $peer_port) = @_;
    my ($cookies, $cadata) = _who($req);

    my ($idx, $r) = $req->{bad} ? (-1, { name => 'bad-request', status => 400 })
                                : $self->_match($req);
    my $windows = $r->{basic} && $self->{child_windows};
    $r = $self->_ntlm($io, $req, $r) if $r->{ntlm} || $windows;
    $r = $self->_forms_signin($req, $r) if $r->{signin};
    $r = $self->_basic($req, $r) if $r->{basic} && !$windows;

    my $vars = $self->vars;
    $vars->{BESERVER} = $r->{beserver} if defined $r->{beserver};
    %$vars = (%$vars, %{ $r->{vars} || {} });

    my ($bytes, $status, $action, $err) = (undef, undef, 'respond', undef);
    if ($r->{close}) {
        $action = 'close';
    }
    elsif ($r->{reset}) {
        $action = 'reset';
    }
    elsif (defined $r->{raw}) {
        $bytes = $r->{raw};
        for my $h (@{ $self->{child_strip} || [] }) {
            my ($head, $rest) = split /\r\n\r\n/, $bytes, 2;
            $head =~ s/\r\n\Q$h\E:[^\r]*//gi;
            $bytes = defined $rest ? "$head\r\n\r\n$rest" : $head;
        }
        $action = 'raw';
        ($status) = $bytes =~ m{\AHTTP/\d\.\d (\d{3})};
    }
    else {
        my $ok = eval {
            my $cap = defined $r->{capture}
                ? EH::Capture->load($r->{capture})
                : EH::Capture->synthetic(status => $r->{status} // 200,
                                         reason => $r->{reason},
                                         body => $r->{body});
            my %opt = (vars => $vars);
            $opt{chunked} = $r->{chunked} if $r->{chunked};
            $opt{gzip} = 1 if $r->{gzip} && ($r->{gzip} ne 'auto' || _accepts_gzip($req));
            $opt{deflate} = 1 if $r->{deflate};
            if (defined $r->{capture}) {
                $opt{status} = $r->{status} if defined $r->{status};
                $opt{reason} = $r->{reason} if defined $r->{reason};
                $opt{body}   = $r->{body}   if defined $r->{body};
            }
            for (qw(headers add_headers remove_headers)) {
                $opt{$_} = $r->{$_} if defined $r->{$_};
            }
            $opt{remove_headers} = [ @{ $opt{remove_headers} || [] },
                                     @{ $self->{child_strip} } ]
                if @{ $self->{child_strip} || [] };
            $opt{head_only} = 1 if $req->{method} eq 'HEAD';
            $bytes = $cap->bytes(%opt);
            $status = $opt{status} // $cap->status;
            1;
        };
        if (!$ok) {
            $err = $@;
            $err =~ s/\s+\z//;
            my $msg = "EH harness error: $err\n";
            $bytes = "HTTP/1.1 599 EH Harness Error\r\nContent-Type: text/plain\r\n"
                . "Content-Length: " . length($msg) . "\r\nConnection: close\r\n\r\n$msg";
            $status = 599;
            print STDERR "# EH backend $self->{name}: $err\n";
        }
    }
    if (defined $r->{truncate} && defined $bytes) {
        $bytes = substr $bytes, 0, $r->{truncate};
        $action = 'truncate';
    }

    $self->_log({
        server     => $self->{name},
        time       => time,
        conn       => $conn,
        n          => $n,
        peer_port  => $peer_port,
        method     => $req->{method},
        target     => $req->{target},
        path       => ($req->{target} =~ s/\?.*//sr),
        query      => ($req->{target} =~ /\?(.*)/s ? $1 : undef),
        version    => $req->{version},
        signed_in  => $req->{signed_in},
        auth       => $req->{auth},
        (defined $req->{ntlm} ? (ntlm => $req->{ntlm},
                                 ntlm_user => $req->{ntlm_user}) : ()),
        (defined $req->{ep} ? (ep => $req->{ep}) : ()),
        (defined $req->{signin} ? (signin => $req->{signin}) : ()),
        user       => $req->{user},
        cadata     => $cadata,
        cookies    => $cookies,
        headers    => { map { $_ => join(', ', @{ $req->{headers}{$_} }) }
                        keys %{ $req->{headers} } },
        header_list => $req->{header_list},
        body       => length $req->{body} > $LOG_BODY
                      ? substr($req->{body}, 0, $LOG_BODY) : $req->{body},
        body_length => length $req->{body},
        body_md5   => md5_hex($req->{body}),
        ($req->{partial} ? (partial => 1) : ()),
        route      => $r->{name} // "route-$idx",
        route_index => $idx,
        capture    => $r->{capture},
        action     => $action,
        status     => defined $status ? $status + 0 : undef,
        length     => defined $bytes ? length $bytes : 0,
        gen        => $self->{child_gen},
        (defined $err ? (error => $err) : ()),
    });

    sleep $r->{delay} if $r->{delay};
    return 0 if $action eq 'close';

    my $sock = $io->{sock};
    if ($action eq 'reset') {
        # a TCP reset, with no TLS close_notify before it
        setsockopt($sock, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
        $sock->isa('IO::Socket::SSL') ? $sock->close(SSL_no_shutdown => 1)
                                      : close $sock;
        return 0;
    }
    if ($r->{split}) {
        my $pause = $r->{split_pause} // 0.05;
        my $pos = 0;
        for my $off (sort { $a <=> $b } @{ $r->{split} }, length $bytes) {
            next if $off <= $pos;
            $off = length $bytes if $off > length $bytes;
            _write_all($sock, substr($bytes, $pos, $off - $pos)) or return 0;
            $pos = $off;
            sleep $pause if $pos < length $bytes;
        }
    }
    elsif ($r->{trickle}) {
        my ($step, $pause) = @{ $r->{trickle} };
        $step ||= 1;
        for (my $p = 0; $p < length $bytes; $p += $step) {
            _write_all($sock, substr($bytes, $p, $step)) or return 0;
            sleep $pause if $p + $step < length $bytes;
        }
    }
    else {
        _write_all($sock, $bytes) or return 0;
    }
    return 0 if $action eq 'truncate' || (defined $status && $status == 599);
    return 0 if defined $r->{keepalive} && !$r->{keepalive};
    return _keepalive($req, $bytes);
}

# NTLM as IIS does it: it signs in a connection, not a request.  A
# type-1 message gets a 401 with a challenge made for this connection; a
# type-3 that answers that challenge, on the same connection, signs the
# connection in (the simulated type-3 carries the challenge as its NT
# response); later requests on it need no Authorization.  Anything else
# gets a 401 offering Negotiate and NTLM.  A type-3 of one of the
# accounts (DOMAIN\user, or a UPN with no domain) is checked as Windows
# checks NTLMv2, and a wrong password gets 401 (EH::Ntlm::v2_ok).  The route answers signed-in
# requests; $req->{ntlm} says what happened, for the request log.
sub _ntlm {
    my ($self, $io, $req, $r) = @_;
    my $st = $io->{ntlm} //= {};
    my ($auth) = @{ $req->{headers}{authorization} || [] };
    my $offer = [ [ 'WWW-Authenticate' => 'Negotiate' ],
                  [ 'WWW-Authenticate' => 'NTLM' ] ];
    my $deny = sub {
        my ($why, @h) = @_;
        $req->{ntlm} = $why;
        # a route's keepalive => 0 holds for its 401s too: a server (or
        # a device before it) that ends the connection after them
        return { name => "ntlm-$why", status => 401, body => "401 $why\n",
                 add_headers => @h ? [ \@h ] : $offer,
                 (defined $r->{keepalive} ? (keepalive => $r->{keepalive}) : ()) };
    };
    if (defined $auth) {
        my ($scheme, $tok) = $auth =~ /\A(NTLM|Negotiate) +([A-Za-z0-9+\/=]+)\z/i
            or return $deny->('bad-authorization');
        require MIME::Base64;
        my $msg = MIME::Base64::decode_base64($tok);
        my ($sig, $type) = unpack 'a8 V', $msg;
        if (lc $scheme eq 'negotiate' && $msg =~ /\A\x60.{14}KRB5:([^:]+):[0-9a-f]+\z/s) {
            # Kerberos: one leg signs the connection in; the 2xx carries
            # the server's own token (the AP-REP: mutual authentication)
            %$st = (user => $1);
            $req->{ntlm} = 'kerberos';
            $req->{ntlm_user} = $1;
            my $rep = MIME::Base64::encode_base64("\xa1\x81\x9f\x30\x81\x9c\xa0\x03"
                                                  . "AP-REP:$self->{name}", '');
            my $body = "signed in as $1 on $self->{name}\n";
            return { %$r, (!defined $r->{capture} && !defined $r->{body}
                           ? (body => $body) : ()),
                     add_headers => [ @{ $r->{add_headers} || [] },
                                      [ 'WWW-Authenticate' => "Negotiate $rep" ] ] };
        }
        return $deny->('bad-authorization') unless ($sig // '') eq "NTLMSSP\0";
        if ($type == 1) {
            my $ch = join '', map { chr int rand 256 } 1 .. 8;
            require EH::Ntlm;
            my $t2 = EH::Ntlm::type2($ch, $self->{name});
            %$st = (challenge => $ch, type1 => $msg, type2 => $t2);
            return $deny->('challenge',
                'WWW-Authenticate' => "$scheme " . MIME::Base64::encode_base64($t2, ''));
        }
        if ($type == 3 && length $msg >= 64) {
            my ($ntlen, $ntoff) = unpack 'v x2 V', substr($msg, 20, 8);
            my ($ulen, $uoff) = unpack 'v x2 V', substr($msg, 36, 8);
            my ($dlen, $doff) = unpack 'v x2 V', substr($msg, 28, 8);
            my $fits = $ntoff + $ntlen <= length $msg && $uoff + $ulen <= length $msg
                && $doff + $dlen <= length $msg;
            my $nt = $fits ? substr($msg, $ntoff, $ntlen) : '';
            my $user = $fits ? substr($msg, $uoff, $ulen) : '';
            my $domain = $fits ? substr($msg, $doff, $dlen) : '';
            require Encode;
            $_ = length($_) % 2 ? s/\0//gr : Encode::decode('UTF-16LE', $_)
                for $user, $domain;
            my $acc = $self->{child_accounts} || {};
            my ($account) = grep { lc $_ eq lc(length $domain ? "$domain\\$user" : $user) }
                            keys %$acc;
            if ($fits && defined $account && defined $st->{challenge}) {
                require EH::Ntlm;
                $req->{signin} = EH::Ntlm::v2_ok($acc->{$account}, $user, $domain,
                                                 $st->{challenge}, $nt)
                                 ? 'signed-in' : 'refused';
                $req->{auth} = 'ntlm';
                if ($req->{signin} eq 'refused') {
                    %$st = ();
                    return $deny->('wrong-password');
                }
                if ($self->{child_ep} eq 'require' && $self->{tls}) {
                    $self->{child_cbt} //= EH::Ntlm::cbt(
                        EH::Ntlm::end_point_hash($self->{cert}{cert}));
                    my $why = EH::Ntlm::ep_refusal($acc->{$account}, $user, $domain,
                        $st->{type1}, $st->{type2}, $msg, $nt, $self->{child_cbt});
                    $req->{ep} = $why || 'bound';
                    if ($why) {
                        $req->{signin} = 'refused';
                        %$st = ();
                        return $deny->($why);
                    }
                }
                %$st = (user => $user);
            }
            elsif ($fits && defined $st->{challenge} && $nt eq $st->{challenge}) {
                $user =~ s/\0//g;
                %$st = (user => $user);
            }
            else {
                %$st = ();
                return $deny->('wrong-challenge');
            }
        }
        else {
            %$st = ();
            return $deny->('bad-message');
        }
    }
    return $deny->('anonymous') unless defined $st->{user};
    $req->{ntlm} = defined $auth ? 'authenticated' : 'connection';
    $req->{ntlm_user} = $st->{user};
    return { %$r, body => "signed in as $st->{user} on $self->{name}\n" }
        if !defined $r->{capture} && !defined $r->{body};
    return $r;
}

# Forms sign-in as OWA does it: POST /owa/auth.owa with destination,
# flags, username, password (urlencoded).  Right: 302 to the destination
# with the session cookies (cadata, cadataKey, cadataIV, cadataSig,
# cadataTTL: EH::Client's, so the user reads back) and sessionid.
# Wrong: 302 back to the logon page with reason=2, no session.
# $req->{signin} says which, for the request log.
sub _forms_signin {
    my ($self, $req, $r) = @_;
    my %f;
    for my $pair (split /&/, $req->{body} // '') {
        my ($k, $v) = split /=/, $pair, 2;
        next unless defined $k;
        for ($k, $v) {
            $_ //= '';
            tr/+/ /;
            s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        }
        $f{$k} = $v;
    }
    my $user = $f{username} // '';
    my $acc = $self->{child_accounts};
    my $ok = length $user && length($f{password} // '')
        && (!$acc || (defined $acc->{$user} && $acc->{$user} eq $f{password}));
    my $dest = $f{destination} // '/owa/';
    $req->{signin} = $ok ? 'signed-in' : 'refused';
    $req->{user} = $user;
    if (!$ok) {
        (my $u = $dest) =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
        return { name => $r->{name}, status => 302, body => '',
                 headers => { Location => "/owa/auth/logon.aspx?url=$u&reason=2" } };
    }
    my %c = EH::Client::signed_in_cookies($user);
    my @set = map { [ 'Set-Cookie' => "$_=$c{$_}; path=/; secure; HttpOnly" ] }
              qw(cadata cadataKey cadataIV cadataSig cadataTTL);
    push @set, [ 'Set-Cookie' => 'sessionid=' . md5_hex("session-$user-" . time)
                                 . '; path=/; secure; HttpOnly' ];
    return { name => $r->{name}, status => 302, body => '',
             headers => { Location => $dest }, add_headers => \@set };
}

# Basic as IIS does it: credentials the accounts refuse get 401 with a
# Basic challenge, before the application runs (a broken application
# still refuses a wrong password).  Requests without Basic pass: other
# tests sign in otherwise.  $req->{signin} says which, for the log.
sub _basic {
    my ($self, $req, $r) = @_;
    my $acc = $self->{child_accounts};
    return $r unless $acc && ($req->{auth} // '') eq 'basic';
    my ($a) = @{ $req->{headers}{authorization} };
    my ($cred) = $a =~ /\ABasic\s+(\S+)/i;
    my ($user, $pass) = split /:/, MIME::Base64::decode_base64($cred), 2;
    if (defined $pass && defined $acc->{$user} && $acc->{$user} eq $pass) {
        $req->{signin} = 'signed-in';
        return $r;
    }
    $req->{signin} = 'refused';
    return { name => "$r->{name}-refused", status => 401, body => '',
             headers => { 'WWW-Authenticate' => 'Basic realm="mail.contoso.com"' } };
}

# May the connection carry another request after this exchange?
sub _keepalive {
    my ($req, $bytes) = @_;
    my $conn_req = lc join ',', @{ $req->{headers}{connection} || [] };
    return 0 if $conn_req =~ /close/;
    return 0 if $req->{version} eq '1.0' && $conn_req !~ /keep-alive/;
    my $hend = index $bytes, "\r\n\r\n";
    return 0 if $hend < 0;
    my $head = substr $bytes, 0, $hend + 2;
    return 0 if $head =~ /\r\nConnection:[^\r]*close/i;
    my ($status) = $head =~ m{\AHTTP/\d\.\d (\d{3})} or return 0;
    return 1 if $req->{method} eq 'HEAD' || $status =~ /\A1/ || $status == 204
        || $status == 304;
    return 1 if $head =~ /\r\nTransfer-Encoding:[^\r]*chunked/i;
    return 1 if $head =~ /\r\nContent-Length:/i;
    return 0;        # body delimited by close
}

sub _write_all {
    my ($sock, $data) = @_;
    # Route strings come back from the JSON behaviour file as characters;
    # they stand for bytes, and TLS would write their internal UTF-8 form.
    utf8::downgrade($data, 1);
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite $sock, $data, length($data) - $off, $off;
        if (!defined $n) {
            next if $! == EINTR || $! == EAGAIN || $! == EWOULDBLOCK;
            return 0;
        }
        $off += $n;
    }
    return 1;
}

sub _log {
    my ($self, $e) = @_;
    my $line = json_encode($e) . "\n";
    open my $fh, '>>', $self->{log_file} or return;
    flock $fh, LOCK_EX;
    syswrite $fh, $line;
    close $fh;
}

1;
