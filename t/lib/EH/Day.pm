package EH::Day;

# A day of real OWA traffic in front of the harness's farm: signed-in
# users, anonymous logon loads, stale links, users whose mailbox database
# is down, forged cookies on the errorFE page, and servers that break the
# ways Exchange servers break.  t/70-real-traffic.t runs a short day with
# assertions; bench/real-traffic runs a long one with HAProxy beside
# plain nginx.  Any front end with request(METHOD, path, %o) will do.
#
#   my $day = EH::Day->new(farm => $farm, users => 20, rounds => 3);
#   $day->set(EXCH2 => 'seed');
#   $day->forged($front);
#   my $t = $day->traffic($front);   # { failed, requests, load => {...} }
#   EH::Day::even($t->{load}, qw(EXCH1 EXCH3));
#
# The users sign in one way (auth => , %AUTH: forms by default) on a farm
# that may strip Exchange's headers (strip => [names]); sign_in_day()
# runs quiet / EXCH2 broken for that sign-in / healed through the module
# and plain nginx and measures what issue 26 asks for:
#
#   my $day = EH::Day->new(farm => $farm, auth => 'bearer',
#                          strip => [qw(X-BEServer X-CalculatedBETarget)]);
#   my $res = $day->sign_in_day(eject => 1);

use strict;
use warnings;

use POSIX ();
use Time::HiRes qw(time sleep);

use EH::Nginx;
use EH::Front;
use EH::Client ();
use EH::Ntlm ();
use MIME::Base64 qw(encode_base64);

# The states a server of the day can be in.
our @STATES = qw(healthy seed app-pool-stopped iis-500);

# HTTP.SYS's own answer for a stopped application pool
my $HTTPSYS = "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY>"
            . "<h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service "
            . "is unavailable.</p></BODY></HTML>\r\n";

# How users sign in, and the request each of them makes: sessions of
# forms (cadata), AD FS (FedAuth) and OpenID Connect, and Basic, open
# OWA (GET); Basic and Bearer clients call EWS (POST, not retried by
# plain nginx without non_idempotent); Outlook signs a connection in
# with NTLM, Negotiate (NTLM inside it) or Kerberos and calls MAPI over
# it.  fault: the state of a server broken for that sign-in
# (set($name, 'broken')); failure: the back-end routes that answer its
# failures; protocol: the module's protocol (status page); refused: how
# every server answers made-up credentials of that kind (Windows sign-in:
# the handshake itself).
my $EWS_BODY = '<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
    . 'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    . '<GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">'
    . '<FolderShape><BaseShape xmlns="http://schemas.microsoft.com/exchange/'
    . 'services/2006/types">Default</BaseShape></FolderShape><FolderIds>'
    . '<DistinguishedFolderId Id="inbox" xmlns="http://schemas.microsoft.com/'
    . 'exchange/services/2006/types"/></FolderIds></GetFolder></soap:Body>'
    . '</soap:Envelope>';
my %OWA = (method => 'GET', path => '/owa/', protocol => 'owa', fault => 'seed',
           failure => qr/^seed-/);
my %EWS = (method => 'POST', path => '/EWS/Exchange.asmx', protocol => 'ews',
           body => $EWS_BODY);
my %MAPI = (method => 'GET', path => '/mapi/emsmdb/', protocol => 'mapi',
            fault => 'mapi-500', failure => qr/^mapi-500$/);
my $BASIC_401 = { status => 401, body => '',
    add_headers => [ [ 'WWW-Authenticate' => 'Basic realm="mail.contoso.com"' ] ] };
our %AUTH = (
    forms  => { %OWA, sign_in => 'forms',
                refused => { capture => 'owa-redirect-logon' } },
    adfs   => { %OWA, sign_in => 'adfs',
                refused => { status => 302, body => '', headers => { Location =>
                    'https://sts.contoso.com/adfs/ls/?wa=wsignin1.0&wtrealm='
                    . 'https%3a%2f%2fmail.contoso.com%2fowa%2f&wctx=rm%3d0%26id'
                    . '%3dpassive%26ru%3d%252fowa%252f' } } },
    oidc   => { %OWA, sign_in => 'oidc',
                refused => { status => 302, body => '', headers => { Location =>
                    'https://login.microsoftonline.com/contoso.onmicrosoft.com/'
                    . 'oauth2/authorize?client_id=00000002-0000-0ff1-ce00-'
                    . '000000000000&response_type=code+id_token&redirect_uri='
                    . 'https%3a%2f%2fmail.contoso.com%2fowa%2f' } } },
    basic  => { %OWA, sign_in => 'basic', refused => $BASIC_401 },
    'basic-ews' => { %EWS, sign_in => 'basic', fault => 'ews-broken',
                     failure => qr/^broken-ews$/, refused => $BASIC_401 },
    # a made-up token: invalid_token, "Unable to read or process token"
    # (2000001); a server that cannot validate tokens refuses it as it
    # refuses every token (bearer-broken: 2000009)
    bearer => { %EWS, sign_in => 'bearer', fault => 'bearer-broken',
                failure => qr/^bearer-refused$/,
                refused => { capture => 'ews-401-invalid-token',
                    headers => { 'x-ms-diagnostics' => '2000001;reason="Unable '
                        . 'to read or process token.";error_category="invalid_token"' } } },
    ntlm      => { %MAPI, windows => 'NTLM' },
    negotiate => { %MAPI, windows => 'Negotiate' },
    kerberos  => { %MAPI, windows => 'Kerberos' },
);
our @AUTHS = qw(forms adfs oidc basic basic-ews bearer ntlm negotiate kerberos);

# The headers farms strip: the back-end names (X-BEServer,
# X-CalculatedBETarget, X-DiagInfo), and X-FEServer too.
our @BACKEND_NAMES = qw(X-BEServer X-CalculatedBETarget X-DiagInfo);
our @ALL_NAMES = (@BACKEND_NAMES, 'X-FEServer');

# Made-up credentials: users no server signs in.
our $MADE_UP = 'madeup';

# new(farm => $farm, users => N signed-in users, rounds => R,
#     clients => C concurrent clients per front end,
#     seconds => S to spread a phase's requests over S seconds,
#     auth => how they sign in (%AUTH; default forms),
#     strip => [headers every server strips] (default: as the farm
#              has it),
#     noise => N: logon pages, stale links and database-down users in
#              the first N rounds of a phase (default every round; 0: the
#              signed-in users' requests alone))
# Windows sign-in (ntlm, negotiate, kerberos) keeps each user's
# connection from phase to phase, as Outlook does: it wants clients => 1.
sub new {
    my ($class, %o) = @_;
    my $self = bless { users => 20, rounds => 3, clients => 1, seconds => 0,
                       auth => 'forms', %o }, $class;
    $self->{noise} //= $self->{rounds};
    $self->{spec} = $AUTH{ $self->{auth} }
        or die "EH::Day: unknown auth '$self->{auth}' (have: @AUTHS)\n";
    die "EH::Day: Windows sign-in keeps connections: clients => 1\n"
        if $self->{spec}{windows} && $self->{clients} != 1;
    return $self;
}

sub auth { $_[0]{auth} }
sub spec { $_[0]{spec} }

# Requests of one traffic() call that the signed-in users make to the
# day's path (/owa/ for forms).
sub signed_in { $_[0]{users} * $_[0]{rounds} }

# Put a server in a state; every server also answers the day's noise.
# 'broken': broken for the day's sign-in (its %AUTH fault).
sub set {
    my ($self, $name, $state) = @_;
    my $b = $self->{farm}->server($name);
    my $spec = $self->{spec};
    $state = $spec->{fault} if $state eq 'broken';
    my @pre;        # routes in front of the preset's, the first last

    if ($state eq 'app-pool-stopped') {
        push @pre, { name => 'httpsys', path => '^/(owa|ecp)',
            raw => "HTTP/1.1 503 Service Unavailable\r\n"
                 . "Content-Type: text/html; charset=us-ascii\r\n"
                 . "Server: Microsoft-HTTPAPI/2.0\r\nConnection: close\r\n"
                 . 'Content-Length: ' . length($HTTPSYS) . "\r\n\r\n$HTTPSYS" };
    }
    elsif ($state eq 'iis-500') {
        push @pre, { name => 'iis500', path => '^/(owa|ecp)',
                     capture => 'iis-500' };
    }
    elsif ($state !~ /\A(?:healthy|seed|ews-broken|bearer-broken|mapi-500)\z/) {
        die "EH::Day: unknown state '$state' (have: @STATES broken)\n";
    }

    # Outlook's MAPI over a connection that NTLM, Negotiate or Kerberos
    # signed in; a server broken for it answers signed-in requests 500
    # (its answers name the mailbox server, as every proxied answer does)
    if ($spec->{windows}) {
        push @pre, $state eq 'mapi-500'
            ? { name => 'mapi-500', path => '^/mapi/', ntlm => 1, status => 500 }
            : { name => 'mapi', path => '^/mapi/', ntlm => 1, add_headers => [
                  [ 'X-CalculatedBETarget' => $b->fqdn ],
                  [ 'X-BEServer' => $b->vars->{BESERVER} ] ] };
    }

    # made-up credentials of the day's kind, refused as Exchange refuses
    # them (a server refusing every Bearer token refuses these too)
    my $path = '^' . quotemeta($spec->{path}) . '$';
    if ($spec->{windows} && $spec->{windows} eq 'Kerberos') {
        push @pre, { name => 'refused', path => $path,
            match_headers => { authorization => '^Negotiate '
                               . _ticket_prefix($MADE_UP) },
            status => 401, body => '',
            add_headers => [ [ 'WWW-Authenticate' => 'Negotiate' ] ] };
    }
    elsif ($spec->{refused} && $state ne 'bearer-broken') {
        push @pre, map { +{ name => 'refused', path => $path,
                           user => "$MADE_UP$_", %{ $spec->{refused} } } } 1 .. 9;
    }

    # what every server answers whatever its state: stale links, and the
    # users of a mailbox database that is down (through every front end)
    push @pre, { name => 'stale', path => '^/owa/old/', status => 302,
        headers => { Location => '/owa/auth/errorFE.aspx?httpCode=404' },
        body => '' };
    push @pre, { name => 'stale-page', path => '^/owa/gone/',
                 capture => 'errorfe-page-en', status => 404 };
    push @pre, map { +{ name => "dbdown-$_", user => $_, path => '^/owa/$',
                       capture => 'errorfe-redirect', beserver => 'MBX7' } }
        qw(db1 db2 db3);

    # one write: a request in between would meet the preset without the
    # routes above (a made-up NTLM answer once met a plain 200 so)
    $b->preset($state eq 'seed' || $state eq 'ews-broken'
               || $state eq 'bearer-broken' ? $state : 'healthy',
               prepend => [ reverse @pre ],
               ($self->{strip} ? (strip => $self->{strip}) : ()));
}

# The base64 prefix every made-up Kerberos ticket for $user... starts with.
sub _ticket_prefix {
    my ($user) = @_;
    my $t = "\x60\x82\x01\x00\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"
          . "KRB5:$user";
    return encode_base64(substr($t, 0, 3 * int(length($t) / 3)), '');
}

# Anonymous clients asking for the errorFE page with made-up cookies.
sub forged {
    my ($self, $front, $n) = @_;
    for my $i (1 .. ($n // 9)) {
        $front->request($_ => '/owa/auth/errorFE.aspx?httpCode=500&be=EXCH2',
                        cookies => { cadata => "forged$i" }) for qw(GET POST);
    }
}

# One signed-in request of the day's kind from $user through $front (the
# response).  Windows sign-in: the user's connection, signed in on its
# first request and again whenever it is refused (EH::Ntlm).
sub ask {
    my ($self, $front, $user, @h) = @_;
    my $spec = $self->{spec};
    if (my $scheme = $spec->{windows}) {
        my $conns = $self->{conns}{ _key($front) } //= {};
        if (my $c = $conns->{$user}) {
            my (undef, $r) = EH::Ntlm::again($c, scheme => $scheme,
                                             user => $user, path => $spec->{path});
            return $r;
        }
        my $res = EH::Ntlm::outlook(port => $front->port, scheme => $scheme,
                                    user => $user, path => $spec->{path},
                                    requests => 0);
        $conns->{$user} = $res->{client};
        return { status => $res->{statuses}[-1] };
    }
    return $front->request($spec->{method} => $spec->{path},
        signed_in => $user, auth => $spec->{sign_in},
        (defined $spec->{body} ? (body => $spec->{body},
                                  content_type => 'text/xml; charset=utf-8') : ()),
        @h ? (headers => { @h }) : ());
}

sub _key { my ($front) = @_; return ref $front ? "$front" : $front }

# A user's request as a new client makes it: for Windows sign-in, a new
# connection signed in for it and closed after (Outlook starting); else
# as ask().
sub ask_anew {
    my ($self, $front, $user) = @_;
    my $spec = $self->{spec};
    my $scheme = $spec->{windows} or return $self->ask($front, $user);
    my $res = EH::Ntlm::outlook(port => $front->port, scheme => $scheme,
                                user => $user, path => $spec->{path},
                                requests => 0);
    $res->{client}->close;
    return { status => $res->{statuses}[-1] };
}

# Windows sign-in: close the users' connections through $front (all
# front ends without one).
sub hang_up {
    my ($self, $front) = @_;
    for my $k (defined $front ? (_key($front)) : keys %{ $self->{conns} || {} }) {
        $_->close for values %{ delete $self->{conns}{$k} || {} };
    }
}

# Made-up credentials of the day's kind, $n requests of the day's path
# through $front, each from another made-up user; every server refuses
# them as Exchange does.  Returns the answers: { user, status, body }.
sub made_up {
    my ($self, $front, $n) = @_;
    my $spec = $self->{spec};
    my @st;
    for my $i (1 .. ($n // 9)) {
        my $user = $MADE_UP . (($i - 1) % 9 + 1);
        my $r;
        if (my $scheme = $spec->{windows}) {
            my $c = EH::Client->new(port => $front->port, keepalive => 1);
            if ($scheme eq 'Kerberos') {
                $r = $c->request(GET => $spec->{path}, headers => [ [
                    Authorization => 'Negotiate ' . EH::Ntlm::kerberos($user) ] ]);
            }
            else {
                # the answer to another challenge than the server's
                $r = $c->request(GET => $spec->{path}, headers => [ [
                    Authorization => "$scheme " . EH::Ntlm::type1() ] ]);
                $r = $c->request(GET => $spec->{path}, headers => [ [
                    Authorization => "$scheme "
                    . EH::Ntlm::type3(join('', map { chr int rand 256 } 1 .. 8),
                                      $user) ] ]);
            }
            $c->close;
        }
        else {
            $r = $front->request($spec->{method} => $spec->{path},
                signed_in => $user, auth => $spec->{sign_in},
                (defined $spec->{body} ? (body => $spec->{body},
                    content_type => 'text/xml; charset=utf-8') : ()));
        }
        push @st, { user => $user, status => $r->{status} // 0,
                    body => $r->{body} // '' };
    }
    return @st;
}

# One client's share of a phase: users $first, $first + C, ...; returns
# the number of signed-in requests whose final answer was not 200.  With
# seconds => S, its requests are spread over S seconds.  The noise
# (logon pages, stale links, database-down users) signs in to OWA the
# day's way where that is an OWA way, else with forms.
sub _client {
    my ($self, $front, $first, $tag) = @_;
    my $failed = 0;
    my @h = defined $tag ? ('X-EH-Front' => $tag) : ();
    my $mine = int(($self->{users} - $first) / $self->{clients}) + 1;
    my $pause = $self->{seconds} ? $self->{seconds} / ($mine * $self->{rounds})
                                 : 0;
    my $owa = $self->{spec}{protocol} eq 'owa' ? $self->{spec}{sign_in} : 'forms';
    my @hdr = @h ? (headers => { @h }) : ();
    my $next = time;
    for my $round (1 .. $self->{rounds}) {
        for (my $u = $first; $u <= $self->{users}; $u += $self->{clients}) {
            my $r = $self->ask($front, "user$u", @h);
            $failed++ unless ($r->{status} // 0) == 200;
            $next += $pause;
            sleep $next - time if $next > time;
        }
        next unless $first == 1 && $round <= $self->{noise};
        $front->request(GET => '/owa/auth/logon.aspx?replaceCurrent=1', @hdr)
            for 1 .. 3;
        $front->request(GET => '/owa/old/inbox.aspx', signed_in => "user$_",
                        auth => $owa, @hdr) for 1 .. 2;
        $front->request(GET => '/owa/gone/item.aspx', signed_in => "user$_",
                        auth => $owa, @hdr) for 1 .. 2;
        $front->request(GET => '/owa/', signed_in => "db$_", auth => $owa, @hdr)
            for 1 .. 3;
    }
    return $failed;
}

# One phase of traffic through a front end: what the users saw, and the
# signed-in users' requests each server took.  With tag => T, the logs
# are not cleared and only the requests sent with that tag are counted:
# several front ends can then run the same phase at once (phase()).
sub traffic {
    my ($self, $front, %o) = @_;
    my $farm = $self->{farm};
    my $tag = $o{tag};
    $farm->clear_logs unless defined $tag;

    my $failed = 0;
    $failed += $_ for $self->_at_once(map { my $c = $_;
        sub { $self->_client($front, $c, $tag) } } 1 .. $self->{clients});

    return { failed => $failed, requests => $self->signed_in,
             load => $self->load($tag) };
}

# The signed-in users' requests of the day's path each server took
# (those sent with $tag).
sub load {
    my ($self, $tag) = @_;
    my $farm = $self->{farm};
    my $path = '^' . quotemeta($self->{spec}{path}) . '$';
    return { map {
        my $s = $_;
        $s => scalar(grep {
                  ($_->{user} // $_->{ntlm_user} // '') =~ /^user\d+$/
                  && (!defined $tag
                      || ($_->{headers}{'x-eh-front'} // '') eq $tag)
              } $farm->server($s)->requests(path => $path))
    } $farm->names };
}

# The same phase through several front ends at once, { name => front }:
# { name => traffic() result }.
sub phase {
    my ($self, $fronts) = @_;
    die "EH::Day: Windows sign-in keeps connections: one front end at a time\n"
        if $self->{spec}{windows};
    $self->{farm}->clear_logs;
    my @names = sort keys %$fronts;
    my @failed = $self->_at_once(map { my $name = $_;
        sub { $self->traffic($fronts->{$name}, tag => $name)->{failed} } }
        @names);
    my %res;
    for my $i (0 .. $#names) {
        $res{ $names[$i] } = { failed => $failed[$i],
                               requests => $self->signed_in,
                               load => $self->load($names[$i]) };
    }
    return \%res;
}

# Each sub in a child process of its own, all at once; the numbers they
# return, in order.  One that dies counts every signed-in request failed.
# A single sub runs here.
sub _at_once {
    my ($self, @subs) = @_;
    return map { $_->() } @subs if @subs <= 1;
    my @kids;
    for my $sub (@subs) {
        pipe my $r, my $w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            my $n = eval { $sub->() } // $self->signed_in;
            print $w "$n\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    return map {
        my ($pid, $r) = @$_;
        my $n = <$r>;
        waitpid $pid, 0;
        defined $n ? $n + 0 : $self->signed_in;
    } @kids;
}

# Is the load within 10 % of even over @healthy?
sub even {
    my ($load, @healthy) = @_;
    my $total = 0;
    $total += $load->{$_} for @healthy;
    return 0 unless $total;
    for (@healthy) {
        return 0 if abs($load->{$_} / $total - 1 / @healthy) > 0.10;
    }
    return 1;
}

# The module as the day runs it, with its status page.  keepalive => N:
# connections kept to the servers (the documented configuration; Windows
# sign-in needs them).
sub module_front {
    my ($farm, %o) = @_;
    my $eject = delete $o{eject} // '2s';
    my $keepalive = delete $o{keepalive};
    return EH::Front::nginx($farm,
        upstream => ($keepalive ? "keepalive $keepalive;\n" : '')
                    . "exchange_health_eject time=$eject;",
        server => 'location = /status { exchange_health_status; }', %o);
}

# Plain nginx as its best practice would have it; non_idempotent => 1
# sends a failed POST on too (as issue 26 measured it).
sub plain_front {
    my ($farm, %o) = @_;
    my $scheme = $farm->scheme;
    my $ni = delete $o{non_idempotent} ? ' non_idempotent' : '';
    return EH::Nginx->new(%o, module => 0,
        http => $farm->upstream_block('exchange',
                    all => 'max_fails=1 fail_timeout=10s') . <<"CONF");
server {
    listen 127.0.0.1:{{PORT}};
    location / {
        proxy_pass $scheme://exchange;
        proxy_ssl_verify off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream error timeout http_500 http_502 http_503$ni;
    }
}
CONF
}

# Farm-wide fault transitions the module logged since $mark.
sub transitions {
    my ($ng, $mark) = @_;
    my $n = () = $ng->error_log_since($mark)
        =~ /farm-wide fault for \S+(?:, not ejecting| cleared)/g;
    return $n;
}

# The servers the module has out (ejected or on trial) for a protocol
# (default OWA), by the names the status page gives them, or with $farm,
# by the farm's names for their addresses (a farm that strips X-FEServer
# tells the module no name).
sub out {
    my ($ng, $protocol, $farm) = @_;
    $protocol //= 'owa';
    my ($j) = EH::Front::status_json($ng);
    return join ' ', sort map { $farm ? $farm->name_of($_->{address}) : $_->{name} }
        grep { ($_->{protocols}{$protocol}{state} // '') =~ /ejected|trial/ }
        @{ $j->{upstreams}[0]{servers} };
}

# A server's state for a protocol on the status page ('healthy',
# 'ejected', 'awaiting trial', 'on trial', ...; '' when not shown), the
# server by its address.
sub state_of {
    my ($ng, $addr, $protocol) = @_;
    my ($j) = EH::Front::status_json($ng);
    my ($s) = grep { $_->{address} eq $addr } @{ $j->{upstreams}[0]{servers} || [] };
    return $s ? $s->{protocols}{$protocol}{state} // '' : '';
}

# Wait while the status page says a server is ejected for a protocol
# (its ejected_until is whole seconds, and may be up to one early): the
# seconds waited.
sub wait_ejection {
    my ($ng, $addr, $protocol, $timeout) = @_;
    my $t = time;
    while (state_of($ng, $addr, $protocol) eq 'ejected'
           && time - $t < ($timeout // 30)) {
        sleep 0.05;
    }
    return time - $t;
}

# The state changes that act (ejected, trial-failed, readmitted,
# farm-fault, farm-cleared) the module logged since $mark: lines.
sub acts {
    my ($ng, $mark) = @_;
    return map { $_->{line} } map { EH::Front::changes($ng, $_, since => $mark) }
        qw(ejected trial-failed readmitted farm-fault farm-cleared);
}

# sign_in_day(eject => seconds (1), limit => N (20), keepalive => N (32),
#             plain => 0 for the module alone, log => its error_log level
#             (warn), check => 0: no test assertion on its error log)
#
# A short day of the day's sign-in, on its farm (strip): each front end
# started afresh, the module (exchange_health_eject time=eject, keepalive)
# and plain nginx (max_fails=1 fail_timeout=10s, proxy_next_upstream
# error timeout http_500 http_502 http_503 non_idempotent), the same
# phases one after the other:
#
#   quiet   every server healthy; 9 made-up credentials first;
#   broken  EXCH2 breaks for this sign-in; 9 made-up credentials first,
#           then the users; EXCH2 must be out after it;
#   healed  EXCH2 heals; once its ejection is over, 9 made-up
#           credentials, then the users' requests one at a time until the
#           module re-admits it (at most limit), then the users (Windows
#           sign-in: each of those requests a new connection signed in,
#           and the users connect anew for the phase, as Outlook does
#           when it starts).
#
# Returns {
#   module => { quiet|broken|healed => traffic() }, plain => { ... }
#                (plain nginx with plain => 1, the default),
#   out          EXCH2 out for the protocol when the broken phase ended (0/1)
#   out_after    failures EXCH2 answered the module's users before it was
#                taken out (undef: not taken out), failures: all of them
#   back_s       seconds from healing to re-admission (undef: never)
#   back_after   users' requests after its ejection was over, to the one
#                that re-admitted it (undef: never within the limit)
#   waited       seconds waited, after healing, for its ejection to end
#   wrong        ejections of any other server (any protocol), of EXCH2
#                outside the broken phase, trials failed after healing
#   farm         farm-wide fault transitions (raised and cleared)
#   made_up      state changes logged while made-up credentials were sent
#                (lines), made_up_ok: their answers that were 2xx,
#                made_up_answers: those answers ("user: status body")
#   problems     alert, emerg and crash lines of the module's error log
#   seconds      how long it took
# }
sub sign_in_day {
    my ($self, %o) = @_;
    my $farm = $self->{farm};
    my $spec = $self->{spec};
    my $proto = $spec->{protocol};
    my @names = qw(EXCH1 EXCH2 EXCH3);
    my $t0 = time;
    my %res = (made_up => [], made_up_ok => 0, wrong => []);

    $self->set($_, 'healthy') for @names;
    my $module = module_front($farm, eject => ($o{eject} // 1) . 's',
                              keepalive => $o{keepalive} // 32,
                              error_log_level => $o{log} // 'warn',
                              check => $o{check} // 1);
    my $plain = ($o{plain} // 1)
        ? plain_front($farm, non_idempotent => 1, check => $o{check} // 1)
        : undef;
    $_->start for grep { $_ } $module, $plain;
    my $m0 = $module->mark;

    my $made_up = sub {
        my $mark = $module->mark;
        my @ok = grep { $_->{status} >= 200 && $_->{status} < 300 }
                 $self->made_up($module);
        $res{made_up_ok} += @ok;
        push @{ $res{made_up_answers} }, map {
            "$_->{user}: $_->{status} " . substr($_->{body} =~ s/\s+/ /gr, 0, 80) } @ok;
        push @{ $res{made_up} }, acts($module, $mark);
    };
    my $run = sub {
        my ($phase) = @_;
        $res{module}{$phase} = $self->traffic($module);
        my @log = $farm->server('EXCH2')->requests;
        $res{plain}{$phase} = $self->traffic($plain) if $plain;
        return @log;
    };

    # quiet
    $made_up->();
    $run->('quiet');

    # broken
    my $m1 = $module->mark;
    $self->set(EXCH2 => 'broken');
    $made_up->();
    my @log = $run->('broken');
    my $bad = $spec->{failure};
    $res{failures} = grep { ($_->{route} // '') =~ $bad
                            && ($_->{user} // $_->{ntlm_user} // '') =~ /^user\d+$/ } @log;
    my $ex2 = $farm->server('EXCH2')->addr;
    $res{out} = (out($module, $proto, $farm) =~ /EXCH2/) ? 1 : 0;
    my @ej = grep { $_->{addr} eq $ex2 && $_->{protocol} eq $proto }
             EH::Front::changes($module, 'ejected', since => $m1);
    my $trials = grep { $_->{addr} eq $ex2 && $_->{protocol} eq $proto }
                 EH::Front::changes($module, 'trial', since => $m1);
    $res{out_after} = @ej ? $res{failures} - $trials : undef;

    # healed
    my $m2 = $module->mark;
    my $healed = time;
    $self->set(EXCH2 => 'healthy');
    wait_ejection($module, $ex2, $proto);
    $res{waited} = time - $healed;
    $made_up->();
    my $limit = $o{limit} // 20;
    my $mark = $module->mark;
    for my $i (1 .. $limit) {
        $self->ask_anew($module, 'user' . (($i - 1) % $self->{users} + 1));
        if (EH::Front::changes($module, 'readmitted', since => $mark)) {
            $res{back_after} = $i;
            $res{back_s} = time - $healed;
            last;
        }
    }
    # (re-admitted before any of those: by a made-up credential, or
    # never out)
    if (!defined $res{back_after}
        && EH::Front::changes($module, 'readmitted', since => $m2)) {
        $res{back_after} = 0;
        $res{back_s} = time - $healed;
    }
    $self->hang_up;
    $run->('healed');

    # what must not have happened: any other server ejected, EXCH2
    # ejected for another protocol, or for its own before it broke or
    # after it healed, re-admitted while broken, or failing a trial once
    # healed
    my %after = map { $_->{line} => 1 } EH::Front::changes($module, 'ejected',
                                                          since => $m1);
    my %healed = map { $_->{line} => 1 } EH::Front::changes($module, 'ejected',
                                                           since => $m2);
    for my $c (EH::Front::changes($module, 'ejected', since => $m0)) {
        push @{ $res{wrong} }, $c->{line}
            if $c->{addr} ne $ex2 || $c->{protocol} ne $proto
               || !$after{ $c->{line} } || $healed{ $c->{line} };
    }
    my %since_healed = map { $_->{line} => 1 }
        EH::Front::changes($module, 'readmitted', since => $m2);
    push @{ $res{wrong} }, map { $_->{line} } grep {
            $_->{addr} eq $ex2 && !$since_healed{ $_->{line} } }
        EH::Front::changes($module, 'readmitted', since => $m1);
    push @{ $res{wrong} }, map { $_->{line} } grep { $_->{addr} eq $ex2 }
        EH::Front::changes($module, 'trial-failed', since => $m2);
    $res{farm} = transitions($module, $m0);

    $self->hang_up;
    $res{problems} = [ $module->problems ];
    $module->stop;
    $plain->stop(no_check => 1) if $plain;
    $res{seconds} = time - $t0;
    return \%res;
}

# The farms of the matrix: a label and the headers every server strips.
our @FARMS = ([ 'all headers' => [] ],
              [ 'back-end names stripped' => [@BACKEND_NAMES] ],
              [ 'X-FEServer stripped too' => [@ALL_NAMES] ]);

# The share of each server in a load, in per cent of @healthy's requests:
# "34 33 33".
sub shares {
    my ($load, @healthy) = @_;
    my $total = 0;
    $total += $load->{$_} for @healthy;
    return join ' ', map { $total ? sprintf('%.0f', 100 * $load->{$_} / $total) : '-' }
        @healthy;
}

# The matrix's table: its header lines, then for each sign_in_day()
# result its line, and plain nginx's under it when it ran.
my $ROW = '%-9s %-23s %-14s %-14s %-15s %-5s %-4s %-7s %s';

sub header {
    return (sprintf($ROW, 'sign-in', 'farm', 'failed', 'EXCH2 out',
                    'healed back', 'wrong', 'farm', 'made-up',
                    'load %: quiet | broken (EXCH2\'s) | healed'),
            '  failed: signed-in requests whose answer was not 200, quiet/'
            . 'broken/healed, of N each; EXCH2 out: after how many of its',
            '  failures; healed back: the users\' requests after its ejection '
            . 'was over up to the one that re-admitted it, and seconds from',
            '  healing; wrong ejections; farm-wide fault transitions; state '
            . 'changes (and 2xx answers) made-up credentials made; load:',
            '  each server\'s share of the users\' requests, broken: EXCH1 '
            . 'and EXCH3 (EXCH2\'s own count)');
}

sub row {
    my ($auth, $farm, $r) = @_;
    my @n = qw(EXCH1 EXCH2 EXCH3);
    my $failed = sub { my $f = shift;
        join '/', map { $r->{$f}{$_}{failed} } qw(quiet broken healed) };
    my $load = sub { my $f = shift;
        join ' | ', shares($r->{$f}{quiet}{load}, @n),
            shares($r->{$f}{broken}{load}, qw(EXCH1 EXCH3))
            . " ($r->{$f}{broken}{load}{EXCH2})",
            shares($r->{$f}{healed}{load}, @n) };
    my $out = defined $r->{out_after} ? "after $r->{out_after}"
            : "no, $r->{failures} failed";
    my $back = defined $r->{back_after}
        ? sprintf('%d req, %.1f s', $r->{back_after}, $r->{back_s})
        : defined $r->{out_after} ? 'not back' : '-';
    my @lines = sprintf $ROW, $auth, $farm,
        $failed->('module') . " of $r->{module}{quiet}{requests}", $out, $back,
        scalar @{ $r->{wrong} }, $r->{farm},
        scalar(@{ $r->{made_up} }) + $r->{made_up_ok}, $load->('module');
    push @lines, sprintf $ROW, '', '  plain nginx', $failed->('plain'), '', '',
        '', '', '', $load->('plain')
        if $r->{plain};
    return @lines;
}

1;
