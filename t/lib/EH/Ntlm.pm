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

# Extended Protection as IIS checks it (tokenChecking="Require"), from
# the specifications alone, apart from the module's C: the channel
# binding token of RFC 5929's tls-server-end-point (the hash of the
# server's own certificate; SHA-256 for MD5 and SHA-1) in RFC 4121's
# gss_channel_bindings_struct, MD5'd into MsvAvChannelBindings (MS-NLMP
# 2.2.2.1); and the MIC (3.1.5.1.2), HMAC-MD5 under the session base key
# HMAC-MD5(NTOWFv2, NTProofStr) over NEGOTIATE, CHALLENGE and
# AUTHENTICATE with the MIC zero.

# the certificate's hash for tls-server-end-point, from its PEM file
sub end_point_hash {
    my ($pem) = @_;
    require Digest::SHA;
    require MIME::Base64;
    open my $fh, '<', $pem or die "$pem: $!";
    my $text = do { local $/; <$fh> };
    my ($b64) = $text =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s;
    my $der = MIME::Base64::decode_base64($b64 // '');
    my $alg = `openssl x509 -in '$pem' -noout -text 2>/dev/null`
              =~ /Signature Algorithm: *(\S+)/ ? lc $1 : '';
    return $alg =~ /sha384/ ? Digest::SHA::sha384($der)
         : $alg =~ /sha512/ ? Digest::SHA::sha512($der)
         : Digest::SHA::sha256($der);
}

sub cbt {
    my ($hash) = @_;
    my $app = "tls-server-end-point:$hash";
    return md5(pack('V5', 0, 0, 0, 0, length $app) . $app);
}

# the AV pairs of an NTLMv2 response: [id, value] in order
sub av_pairs {
    my ($nt) = @_;
    my @pairs;
    my $p = 16 + 28;
    while ($p + 4 <= length $nt) {
        my ($id, $n) = unpack 'vv', substr($nt, $p, 4);
        last if $id == 0;
        push @pairs, [ $id, substr($nt, $p + 4, $n) ];
        $p += 4 + $n;
    }
    return @pairs;
}

# why a bound AUTHENTICATE is refused, or '' when it passes: $t1 and $t2
# the NEGOTIATE and CHALLENGE of its connection, $cbt what is expected
sub ep_refusal {
    my ($password, $user, $domain, $t1, $t2, $t3, $nt, $cbt) = @_;
    my %av = map { ($_->[0] => $_->[1]) } av_pairs($nt);
    return 'no-channel-binding' unless defined $av{10};
    return 'wrong-channel-binding' unless $av{10} eq $cbt;
    my $flags = defined $av{6} ? unpack('V', $av{6}) : 0;
    return 'no-mic' unless $flags & 2;
    my $key = hmac_md5(ntowfv2($password, $user, $domain), substr($nt, 0, 16));
    my $zeroed = substr($t3, 0, 72) . ("\0" x 16) . substr($t3, 88);
    return 'wrong-mic' unless hmac_md5($key, $t1 . $t2 . $zeroed) eq substr($t3, 72, 16);
    return '';
}

# A real NTLMv2 AUTHENTICATE, as a client without Extended Protection
# makes it (no MIC, no bindings): the "old-style" message
sub type3v2 {
    my ($t2, $password, $user, $domain) = @_;
    my ($ilen, $ioff) = unpack 'v x2 V', substr($t2, 40, 8);
    my $info = substr($t2, $ioff, $ilen);
    my $cc = join '', map { chr int rand 256 } 1 .. 8;
    my $ft = int((time + 11644473600) * 10_000_000);
    my $blob = "\1\1" . ("\0" x 6) . pack('VV', $ft % 2**32, int($ft / 2**32))
             . $cc . ("\0" x 4) . $info . ("\0" x 4);
    my $proof = hmac_md5(ntowfv2($password, $user, $domain),
                         substr($t2, 24, 8) . $blob);
    my $nt = $proof . $blob;
    my ($u, $d) = (utf16($user), utf16($domain));
    my @buf = ("\0" x 24, $nt, $d, $u, '', '');
    my ($head, $payload) = ('', '');
    for my $b (@buf) {
        $head .= pack 'vvV', length $b, length $b, 64 + length $payload;
        $payload .= $b;
    }
    return "NTLMSSP\0" . pack('V', 3) . $head . pack('V', 0x00088205) . $payload;
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
