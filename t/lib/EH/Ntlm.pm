package EH::Ntlm;

# Outlook-like clients for connection-bound sign-in (NTLM, Negotiate).
# The messages have NTLM's real layout (signature, type, security
# buffers) so that the module can read the user from a type-3; the
# "NT response" of a type-3 is the server's challenge itself, which the
# harness's back ends check (see EH::Backend::_ntlm).
#
#   my $res = EH::Ntlm::outlook(port => $ng->port, user => 'alice',
#                               path => '/mapi/emsmdb/', requests => 3);
#   $res->{signed_in}   # 1 when the handshake and every request got 200
#   $res->{statuses}    # every status, handshake first
#   $res->{client}      # the EH::Client, connection still open

use strict;
use warnings;

use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use EH::Client ();

sub type1 {
    return encode_base64("NTLMSSP\0" . pack('V', 1) . pack('V', 0x00088207)
                         . ("\0" x 16), '');
}

# A Kerberos AP-REQ as Negotiate carries it, in shape only: the GSS-API
# header byte (0x60), the Kerberos OID, then (simulated) the user and a
# random authenticator, so that every ticket differs, as real ones do.
# One leg: the back end signs the connection in on it and answers with
# its own token (mutual authentication).
sub kerberos {
    my ($user) = @_;
    my $auth = join '', map { chr int rand 256 } 1 .. 32;
    return encode_base64("\x60\x82\x01\x00\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"
                         . "KRB5:$user:" . unpack('H*', $auth), '');
}

# type3($challenge_bytes, $user, $domain)
sub type3 {
    my ($ch, $user, $domain) = @_;
    $domain //= 'CONTOSO';
    my $u = join '', map { "$_\0" } split //, $user;
    my $d = join '', map { "$_\0" } split //, $domain;
    my $off = 64;
    my @buf = ('', $ch, $d, $u, '', '');     # LM, NT, domain, user, ws, key
    my ($head, $payload) = ('', '');
    for my $b (@buf) {
        $head .= pack 'vvV', length $b, length $b, $off + length $payload;
        $payload .= $b;
    }
    return encode_base64("NTLMSSP\0" . pack('V', 3) . $head
                         . pack('V', 0x00088205) . $payload, '');
}

# the challenge of a 401's WWW-Authenticate, for the scheme used
sub challenge {
    my ($res, $scheme) = @_;
    for (@{ $res->{headers}{'www-authenticate'} || [] }) {
        next unless /\A\Q$scheme\E +([A-Za-z0-9+\/=]+)\z/i;
        my $m = decode_base64($1);
        return substr $m, 24, 8 if length $m >= 32 && substr($m, 8, 4) eq pack('V', 2);
    }
    return undef;
}

sub outlook {
    my (%o) = @_;
    my $scheme = $o{scheme} // 'NTLM';
    my $path = $o{path} // '/mapi/emsmdb/';
    my $c = $o{client} // EH::Client->new(port => $o{port}, keepalive => 1,
                                          timeout => $o{timeout} // 10);
    my %res = (client => $c, statuses => [], signed_in => 0);
    my $get = sub {
        my $r = $c->request(GET => $path, @_);
        push @{ $res{statuses} }, $r->{status} // 0;
        push @{ $res{bodies} }, $r->{body} // '';
        return $r;
    };
    if ($scheme eq 'Kerberos') {
        my $r = $get->(headers => [ [ Authorization => 'Negotiate '
                                      . kerberos($o{user} // 'user') ] ]);
        return \%res unless ($r->{status} // 0) == 200;
        for (1 .. $o{requests} // 3) {
            $r = $get->();
            return \%res unless ($r->{status} // 0) == 200;
        }
        $res{signed_in} = 1;
        return \%res;
    }
    my $r = $get->(headers => [ [ Authorization => "$scheme " . type1() ] ]);
    my $ch = challenge($r, $scheme);
    return \%res unless ($r->{status} // 0) == 401 && defined $ch;
    $r = $get->(headers => [ [ Authorization => "$scheme "
                                 . type3($ch, $o{user} // 'user') ] ]);
    return \%res unless ($r->{status} // 0) == 200;
    for (1 .. $o{requests} // 3) {
        $r = $get->();
        return \%res unless ($r->{status} // 0) == 200;
    }
    $res{signed_in} = 1;
    return \%res;
}

# one more request on a signed-in client, as Outlook makes it: a 401
# means "sign in again" (on this connection, or on a new one when the
# front end closed it); returns the statuses seen and the last answer
sub again {
    my ($c, %o) = @_;
    my $scheme = $o{scheme} // 'NTLM';
    my $path = $o{path} // '/mapi/emsmdb/';
    my @st;
    my $r = $c->request(GET => $path);
    push @st, $r->{status} // 0;
    if (($r->{status} // 0) == 401 && $scheme eq 'Kerberos') {
        $r = $c->request(GET => $path, headers => [ [ Authorization =>
                         'Negotiate ' . kerberos($o{user} // 'user') ] ]);
        push @st, $r->{status} // 0;
    }
    elsif (($r->{status} // 0) == 401) {
        $r = $c->request(GET => $path,
                         headers => [ [ Authorization => "$scheme " . type1() ] ]);
        push @st, $r->{status} // 0;
        my $ch = challenge($r, $scheme);
        if (defined $ch) {
            $r = $c->request(GET => $path, headers => [ [ Authorization =>
                             "$scheme " . type3($ch, $o{user} // 'user') ] ]);
            push @st, $r->{status} // 0;
        }
    }
    return (\@st, $r);
}

# every client's handshake and requests at once, each in its own process;
# returns the list of results (without the clients)
sub outlooks {
    my (%o) = @_;
    my $n = delete $o{clients};
    my @kids;
    for my $i (1 .. $n) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $rd;
            my $res = outlook(%o, user => "user$i");
            print $wr join(' ', $res->{signed_in}, @{ $res->{statuses} }), "\n",
                join("\x1f", map { s/[\r\n]+/ /gr } @{ $res->{bodies} || [] }), "\n";
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [ $pid, $rd ];
    }
    my @out;
    for my $k (@kids) {
        my $fh = $k->[1];
        my $line = <$fh> // '0';
        my $bodies = <$fh> // '';
        chomp($line, $bodies);
        my ($ok, @st) = split / /, $line;
        push @out, { signed_in => $ok, statuses => \@st,
                     bodies => [ split /\x1f/, $bodies ] };
        waitpid $k->[0], 0;
    }
    return @out;
}

1;
