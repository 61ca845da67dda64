# Harness self-test: certificates (EH::Cert) and HTTPS backends.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

sub x509 {
    my ($file, @args) = @_;
    my $out = `openssl x509 -in '$file' -noout @args 2>&1`;
    return $out;
}

subtest 'EH::Cert' => sub {
    my $c = cert(cn => 'mail.contoso.com', san => ['mail.contoso.com', 'IP:127.0.0.1']);
    ok -s $c->{cert} && -s $c->{key}, 'cert and key files';
    like x509($c->{cert}, '-subject'), qr/CN\s*=\s*mail\.contoso\.com/, 'CN';
    like x509($c->{cert}, '-ext subjectAltName'), qr/DNS:mail\.contoso\.com, IP Address:127\.0\.0\.1/, 'SAN';
    is cert(cn => 'mail.contoso.com', san => ['mail.contoso.com', 'IP:127.0.0.1'])->{cert},
        $c->{cert}, 'cached: same options give the same file';

    my $old = cert(cn => 'old.contoso.local', not_before => time - 20 * 86400,
                   not_after => time - 86400);
    my $dates = x509($old->{cert}, '-enddate');
    my $check = system("openssl x509 -in '$old->{cert}' -noout -checkend 0 >/dev/null 2>&1");
    ok $check != 0, "expired certificate is expired ($dates)" =~ s/\n//r;
    ok $old->{not_after} < time, 'not_after reported';

    my $short = cert(cn => 'short.contoso.local', days => 2);
    ok system("openssl x509 -in '$short->{cert}' -noout -checkend 86400 >/dev/null 2>&1") == 0,
        'days => 2: valid tomorrow';
    ok system("openssl x509 -in '$short->{cert}' -noout -checkend 259200 >/dev/null 2>&1") != 0,
        'days => 2: expired in 3 days';

    my $a1 = cert(cn => 'a.contoso.local');
    my $a2 = cert(cn => 'b.contoso.local');
    isnt slurp($a1->{key}), slurp($a2->{key}), 'distinct keys per cn';
    my $s1 = cert(cn => 'c.contoso.local', key => 'shared');
    my $s2 = cert(cn => 'd.contoso.local', key => 'shared');
    is $s1->{key}, $s2->{key}, 'key => name shares a key';
    isnt $s1->{fingerprint}, $s2->{fingerprint}, '... but the certificates differ';

    my $ca = cert(cn => 'Contoso Test CA', is_ca => 1);
    my $leaf = cert(cn => 'e.contoso.local', ca => $ca);
    my $v = `openssl verify -CAfile '$ca->{cert}' '$leaf->{cert}' 2>&1`;
    like $v, qr/: OK/, 'CA-signed certificate verifies against its CA';
    my $rsa = cert(cn => 'rsa.contoso.local', key_type => 'rsa');
    like x509($rsa->{cert}, '-text'), qr/rsaEncryption/, 'rsa key type';
};

subtest 'HTTPS backend presents its certificate' => sub {
    my $b2 = backend(name => 'EXCH2', tls => 1);
    my $b3 = backend(name => 'EXCH3', tls => 1);
    is $b2->scheme, 'https', 'scheme';
    like x509($b2->cert->{cert}, '-subject'), qr/CN\s*=\s*exch2\.contoso\.local/, 'cert made for EXCH2';
    my $r = http_request(GET => '/owa/healthcheck.htm', port => $b2->port, tls => 1);
    is $r->{status}, 200, 'HTTPS request answered';
    is $r->{body}, '200 OK<br/>exch2.contoso.local', 'healthcheck body names the server';
    is $r->{peer_cert}{cn}, 'exch2.contoso.local', 'peer certificate CN = fqdn';
    is $r->{peer_cert}{pem}, $b2->cert->{pem}, 'peer certificate is the one made for it';
    $r = http_request(GET => '/owa/healthcheck.htm', port => $b3->port, tls => 1);
    is $r->{peer_cert}{cn}, 'exch3.contoso.local', 'other server, other CN';
    isnt slurp($b2->cert->{key}), slurp($b3->cert->{key}), 'distinct keys per server';

    # keep-alive over TLS, chunked + gzip over TLS
    $b2->prepend({ path => '^/big', capture => 'owa-script', chunked => 4096, gzip => 1 });
    my $c = EH::Client->new(port => $b2->port, tls => 1, keepalive => 1);
    my @r = map { $c->request(GET => '/big') } 1 .. 2;
    is $r[1]{body}, capture('owa-script')->body, 'gzip+chunked over TLS decodes';
    ok $r[1]{reused_connection}, 'TLS keep-alive';
    my @log = $b2->requests(path => '^/big');
    is $log[0]{conn}, $log[1]{conn}, 'one TLS connection on the backend';

    # a plain-HTTP request to a TLS backend must fail, not hang
    my $p = http_request(GET => '/', port => $b2->port, timeout => 3);
    ok !defined $p->{status} || $p->{status} >= 400, 'plain HTTP to TLS port does not succeed';

    # a backend with a chosen certificate
    my $exp = cert(cn => 'exch5.contoso.local', not_before => time - 10 * 86400,
                   not_after => time - 86400);
    my $b5 = backend(name => 'EXCH5', tls => 1, cert => $exp);
    $r = http_request(GET => '/owa/healthcheck.htm', port => $b5->port, tls => 1);
    is $r->{status}, 200, 'backend with an expired certificate still answers (no verify)';
    is $r->{peer_cert}{pem}, $exp->{pem}, '... with that certificate';
};

done_testing;
