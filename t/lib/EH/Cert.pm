package EH::Cert;

# Certificates for the simulated servers, made with the openssl command.
#
#   my $c = EH::Cert::make(cn => 'exch2.contoso.local');
#   $c->{cert}, $c->{key}          # PEM file paths
#
# Options:
#   cn         => common name (required)
#   san        => [ 'DNS:x', 'IP:127.0.0.1', 'name' ] (default: DNS:<cn>);
#                 a bare name means DNS:name
#   days       => validity from now (default 3650)
#   not_before => epoch seconds    \  explicit validity, e.g. an expired
#   not_after  => epoch seconds    /  certificate: not_after => time - 86400
#   key        => name of a key to use: certificates made with the same key
#                 name share one private key (default: a key per cn)
#   key_type   => 'ec' (P-256, default, fast) or 'rsa' (2048)
#   ca         => a certificate made with is_ca => 1 to sign this one
#                 (default: self-signed)
#   is_ca      => 1 for a CA certificate
#   name       => file stem (default derived from all options)
#   dir        => where to put files (default: <run dir>/certs)
#
# Results are cached for the test run: the same options give the same
# files.  The returned hash also has cn, not_before, not_after (epoch),
# pem (certificate text), fingerprint (SHA-256, hex with colons).

use strict;
use warnings;

use Carp qw(croak);
use Digest::MD5 qw(md5_hex);
use Digest::SHA ();
use MIME::Base64 ();
use POSIX qw(strftime);
use File::Path qw(make_path);

use EH::Util qw(run_dir slurp spew);

my %CACHE;

sub _openssl {
    my (@args) = @_;
    my $cmd = join ' ', map { _q($_) } 'openssl', @args;
    my $out = `$cmd 2>&1`;
    croak "openssl failed: $cmd\n$out" if $?;
    return $out;
}

sub _q {
    my $s = shift;
    return $s if $s =~ m{\A[A-Za-z0-9_./:=+,-]+\z};
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub key_file {
    my (%o) = @_;
    my $dir  = $o{dir} // run_dir() . '/certs';
    my $type = $o{key_type} // 'ec';
    my $name = $o{key} // croak "key_file: key name needed";
    $name =~ s/[^A-Za-z0-9_.-]+/_/g;
    make_path($dir);
    my $file = "$dir/key-$name-$type.pem";
    return $file if -s $file;
    if ($type eq 'ec') {
        _openssl(qw(genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256
                    -out), $file);
    }
    elsif ($type eq 'rsa') {
        _openssl(qw(genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
                    -out), $file);
    }
    else { croak "unknown key_type '$type'" }
    chmod 0600, $file;
    return $file;
}

sub make {
    my (%o) = @_;
    my $cn = $o{cn} // croak "EH::Cert::make: cn is required";
    my $dir = $o{dir} // run_dir() . '/certs';
    make_path($dir);

    my $now = time;
    my ($nb, $na);
    if (defined $o{not_before} || defined $o{not_after}) {
        $nb = $o{not_before} // $now - 3600;
        $na = $o{not_after}  // $nb + 86400 * ($o{days} // 3650);
    }
    else {
        $nb = $now - 3600;                    # an hour of clock slack
        $na = $now + 86400 * ($o{days} // 3650);
    }
    my @san = map { /:/ ? $_ : "DNS:$_" } @{ $o{san} || [$cn] };
    my $key_type = $o{key_type} // 'ec';
    my $key_name = $o{key} // "cn-$cn";

    my $sig = join "\0", $cn, "@san", $o{days} // '', $o{not_before} // '',
        $o{not_after} // '', $key_name, $key_type,
        ($o{ca} ? $o{ca}{cert} : ''), $o{is_ca} ? 1 : 0;
    my $stem = $o{name} // do {
        (my $s = $cn) =~ s/[^A-Za-z0-9_.-]+/_/g;
        "$s-" . substr(md5_hex($sig), 0, 8);
    };
    return $CACHE{"$dir/$stem"} if $CACHE{"$dir/$stem"} && -s $CACHE{"$dir/$stem"}{cert};

    my $key = key_file(dir => $dir, key => $key_name, key_type => $key_type);
    my $csr = "$dir/$stem.csr";
    my $crt = "$dir/$stem.crt";

    # A throw-away "CA" directory for openssl ca, which can set exact dates.
    my $cadir = "$dir/$stem.ca";
    make_path($cadir);
    spew("$cadir/index.txt", '');
    spew("$cadir/serial", sprintf("%08X%08X\n", int rand 2**31, int rand 2**31));
    my $ext = $o{is_ca}
        ? "basicConstraints = critical,CA:true\nkeyUsage = critical,keyCertSign,cRLSign\n"
        : "basicConstraints = CA:false\nkeyUsage = digitalSignature,keyEncipherment\n"
          . "extendedKeyUsage = serverAuth,clientAuth\n";
    $ext .= "subjectAltName = " . join(',', @san) . "\n";
    $ext .= "subjectKeyIdentifier = hash\n";
    $ext .= "authorityKeyIdentifier = keyid\n" if $o{ca};
    spew("$cadir/ca.cnf", <<"EOF");
[ ca ]
default_ca = eh
[ eh ]
database = $cadir/index.txt
new_certs_dir = $cadir
serial = $cadir/serial
default_md = sha256
policy = pol
unique_subject = no
email_in_dn = no
[ pol ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = $cn
[ ext ]
$ext
EOF
    _openssl('req', '-new', '-config', "$cadir/ca.cnf", '-key', $key,
             '-out', $csr);
    my @sign = $o{ca}
        ? ('-cert', $o{ca}{cert}, '-keyfile', $o{ca}{key})
        : ('-selfsign', '-keyfile', $key);
    my $fmt = sub { strftime('%Y%m%d%H%M%SZ', gmtime $_[0]) };
    _openssl('ca', '-batch', '-config', "$cadir/ca.cnf", @sign,
             '-in', $csr, '-out', $crt, '-notext', '-extensions', 'ext',
             '-startdate', $fmt->($nb), '-enddate', $fmt->($na));

    my $pem = slurp($crt);
    my ($b64) = $pem =~ /-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----/s;
    my $fp = join ':', unpack '(A2)*',
        uc Digest::SHA::sha256_hex(MIME::Base64::decode_base64($b64 // ''));
    my $c = {
        cn          => $cn,
        cert        => $crt,
        key         => $key,
        csr         => $csr,
        not_before  => $nb,
        not_after   => $na,
        san         => \@san,
        pem         => $pem,
        fingerprint => $fp,
        ca          => $o{ca} ? $o{ca}{cert} : undef,
        is_ca       => $o{is_ca} ? 1 : 0,
    };
    # cert + key in one file, for servers that want that
    spew("$dir/$stem.pem", $pem . slurp($key));
    $c->{combined} = "$dir/$stem.pem";
    $CACHE{"$dir/$stem"} = $c;
    return $c;
}

1;
