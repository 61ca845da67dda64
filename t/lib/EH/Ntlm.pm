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

use Digest::MD4 qw(md4);
use Digest::MD5 qw(md5);
use Encode ();
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();
use EH::Client ();

# NTLMv2 as a server checks it (MS-NLMP 3.3.2), for the monitoring
# account of the signed-in probes: NTOWFv2 from the password, then the
# NTProofStr of the client's blob under the server's challenge.  The
# users' simulated type-3 (below) carries no such proof.

sub hmac_md5 {
    my ($key, $msg) = @_;
    $key = md5($key) if length $key > 64;
    $key .= "\0" x (64 - length $key);
    return md5(($key ^ ("\x5c" x 64)) . md5(($key ^ ("\x36" x 64)) . $msg));
}

sub utf16 { Encode::encode('UTF-16LE', $_[0]) }

# ntowfv2($password_utf8, $user, $domain): user and domain as characters
sub ntowfv2 {
    my ($password, $user, $domain) = @_;
    my $hash = md4(utf16(Encode::decode('UTF-8', $password)));
    return hmac_md5($hash, utf16(uc($user) . $domain));
}

# the NT response of a type-3 answers $challenge for this password
sub v2_ok {
    my ($password, $user, $domain, $challenge, $nt) = @_;
    return 0 unless length $nt >= 16 + 28;
    my $proof = hmac_md5(ntowfv2($password, $user, $domain),
                         $challenge . substr($nt, 16));
    return $proof eq substr($nt, 0, 16);
}

# A type-2 as IIS sends it: the challenge, the target's name and its AV
# pairs (NetBIOS domain and computer, the time as a FILETIME, the end)
sub type2 {
    my ($challenge, $computer) = @_;
    my $name = utf16('CONTOSO');
    my $av = pack('vv', 2, length $name) . $name;
    my $c = utf16($computer);
    $av .= pack('vv', 1, length $c) . $c;
    my $ft = int((time + 11644473600) * 10_000_000);
    $av .= pack('vv', 7, 8) . pack('VV', $ft % 2**32, int($ft / 2**32));
    $av .= pack('vv', 0, 0);
    return "NTLMSSP\0" . pack('V', 2) . pack('vvV', length $name, length $name, 48)
         . pack('V', 0x008a8205) . $challenge . ("\0" x 8)
         . pack('vvV', length $av, length $av, 48 + length $name) . $name . $av;
}

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
