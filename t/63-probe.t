#!/usr/bin/perl

# Active probes: healthcheck.htm over TLS with SNI, one worker per server
# and protocol per interval; a closed connection with no answer (Exchange
# maintenance mode) drains the server for that protocol until it answers
# again; failing probes drain it after "fails"; a probe never re-admits a
# server live traffic ejected.  The certificates the servers present are
# recorded, and a certificate expiring soon or unlike the others' is
# flagged.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes ();

my $farm_cert = cert(cn => 'mail.contoso.com', key => 'farm',
                     san => ['DNS:mail.contoso.com', 'IP:127.0.0.1']);
my $odd_cert = cert(cn => 'mail.contoso.com', key => 'odd', days => 10,
                    san => ['DNS:mail.contoso.com', 'IP:127.0.0.1']);

my $farm = farm(tls => 1, each => { EXCH1 => { cert => $farm_cert },
                                    EXCH2 => { cert => $farm_cert },
                                    EXCH3 => { cert => $odd_cert } });

my $ng = EH::Front::nginx($farm, worker_processes => 4,
    upstream => "exchange_health_eject time=10m;\n"
              . "exchange_health_probe interval=1s timeout=1s "
              . "sni=mail.contoso.com protocols=owa,ecp fails=2 "
              . "cert_warn=30d;",
    location => 'exchange_health_retry off;',
    server => 'location = /status { exchange_health_status; }');
$ng->start;

sub server_of {
    my ($name) = @_;
    my ($j) = EH::Front::status_json($ng);
    return (grep { $_->{address} eq $farm->server($name)->addr }
            @{ $j->{upstreams}[0]{servers} })[0];
}

sub thumb {
    my ($c) = @_;
    (my $t = `openssl x509 -noout -fingerprint -sha1 -in $c->{cert}`) =~ s/.*=//s;
    $t =~ s/[:\s]//g;
    return uc $t;
}

subtest 'probes and certificates' => sub {
    # The certificate and the FQDN come from whichever of a server's
    # probes (owa or ecp) answers first: wait for both protocols' results
    # too, or the owa result below may not be there yet.
    ok wait_until(sub { 3 == grep { my $s = server_of($_);
                                    $s && $s->{certificate} && $s->{fqdn}
                                    && (grep { my $p = $s->{protocols}{$_};
                                               $p && $p->{probe}
                                               && $p->{probe}{result} }
                                        qw(owa ecp)) == 2 }
                               qw(EXCH1 EXCH2 EXCH3) }, timeout => 5),
       'the probes saw every certificate and probed every protocol';

    my %s = map { $_ => server_of($_) } qw(EXCH1 EXCH2 EXCH3);

    is $s{EXCH1}{certificate}{thumbprint}, thumb($farm_cert),
        'EXCH1: the SHA-1 thumbprint, as Get-ExchangeCertificate shows it';
    is $s{EXCH3}{certificate}{thumbprint}, thumb($odd_cert),
        'EXCH3: its own';
    like $s{EXCH1}{certificate}{subject}, qr/CN=mail\.contoso\.com/,
        'the subject';
    is $s{EXCH1}{fqdn}, 'exch1.contoso.local',
        'the FQDN from the healthcheck.htm answer';
    is $s{EXCH1}{name}, 'EXCH1',
        'named after it before any X-FEServer was seen';

    is $s{EXCH3}{certificate}{expiring}, JSON::PP::true(),
        'EXCH3: expires within 30 days';
    is $s{EXCH1}{certificate}{expiring}, JSON::PP::false(), 'EXCH1 does not';
    is $s{EXCH3}{certificate}{differs}, JSON::PP::true(),
        'EXCH3: not the certificate the others present';
    is $s{EXCH1}{certificate}{differs}, JSON::PP::false(), 'EXCH1 is';

    my $p = $s{EXCH2}{protocols}{owa}{probe};
    is $p && $p->{result}, 'ok', 'EXCH2 probe of owa: ok';

    my $h = $ng->request(GET => '/status')->{body};
    like $h, qr/expires soon: renew it on every server/,
        'the page warns of the expiry';
    like $h, qr/Extended Protection needs the same one on all/,
        'and of the odd certificate';

    my $hits = $farm->server('EXCH1')->requests(
                   path => '^/owa/healthcheck\.htm');
    ok $farm->server('EXCH1')->last_request->{headers}{host}
       =~ /^mail\.contoso\.com$/,
       'the probe asks for the site by its name';
};

subtest 'one worker per server and protocol per interval' => sub {
    # Waits for five probes of EXCH1's OWA, then measures them: four
    # intervals of 1 s apart (a probe is claimed under the zone's lock,
    # then due again an interval later), where a probe once per worker
    # (4 workers) would bring five in about a second.
    $farm->clear_logs;
    my $ex1 = $farm->server('EXCH1');
    my $n = $ex1->wait_hits(5, path => '^/owa/healthcheck\.htm', timeout => 15);
    cmp_ok $n, '>=', 5, "five probes of EXCH1's OWA came: probed";
    my @t = map { $_->{time} }
            $ex1->requests(path => '^/owa/healthcheck\.htm');
    my $span = $t[4] - $t[0];
    cmp_ok $span, '>=', 3, sprintf('... %.1f s from the first to the fifth: '
                                   . 'not once per worker', $span);
    cmp_ok $span, '<=', 10, '... and every interval, not more rarely';
};

subtest 'maintenance mode: no answer drains the server for that protocol' => sub {
    my $m = $ng->mark;
    $farm->server('EXCH2')->preset('maintenance');

    ok $ng->wait_for_error_log(qr/server \S+ \(EXCH2\) drained for owa by its probe of \/owa\/healthcheck\.htm: the connection was closed with no answer/,
                               since => $m, timeout => 5),
       'EXCH2 drained for owa, logged with the reason';

    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "m$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/owa/$'), 0,
        'no OWA request reaches EXCH2';

    is server_of('EXCH2')->{protocols}{owa}{state}, 'inactive',
        'the status page says inactive';

    $m = $ng->mark;
    $farm->server('EXCH2')->heal;
    ok $ng->wait_for_error_log(qr/server \S+ \(EXCH2\) back for owa: its probe of \/owa\/healthcheck\.htm answers again/,
                               since => $m, timeout => 5),
       'back when healthcheck.htm answers again';

    # Four workers, each with its own round robin: six requests need not
    # give EXCH2 two.  Twelve give it at least one (some worker gets three
    # in a row), whichever workers take them.
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => "b$_") for 1 .. 12;
    cmp_ok $farm->server('EXCH2')->hits(path => '^/owa/$'), '>=', 1,
        'and takes OWA requests again';
};

subtest 'failing probes drain after fails=2' => sub {
    my $m = $ng->mark;
    $farm->server('EXCH1')->prepend({ path => '^/ecp/healthcheck\.htm',
                                      status => 503 });
    ok $ng->wait_for_error_log(qr/server \S+ \(EXCH1\) drained for ecp by its probe of \/ecp\/healthcheck\.htm: no 200 OK/,
                               since => $m, timeout => 6),
       'two failed probes drain EXCH1 for ecp';
    is server_of('EXCH1')->{protocols}{ecp}{probe}{failed_in_a_row} >= 2, 1,
        'after two in a row';
    $farm->server('EXCH1')->heal;
};

subtest 'a reset is a failure, not an inactive component' => sub {
    my $m = $ng->mark;
    $farm->server('EXCH2')->prepend({ path => '^/ecp/healthcheck\.htm',
                                      reset => 1 });
    ok $ng->wait_for_error_log(qr/server \S+ \(EXCH2\) drained for ecp by its probe of \/ecp\/healthcheck\.htm: the connection was reset/,
                               since => $m, timeout => 6),
       'EXCH2 drained for ecp: the connection was reset';
    is server_of('EXCH2')->{protocols}{ecp}{probe}{result}, 'failed',
        'the probe failed, not "inactive"';
    $farm->server('EXCH2')->heal;
};

subtest 'a probe does not re-admit a server live traffic ejected' => sub {
    $farm->server('EXCH3')->preset('seed');
    $ng->request(GET => '/owa/', signed_in => "e$_") for 1 .. 12;
    my @ej = grep { $_->{server} eq 'EXCH3' } EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, 'EXCH3 ejected by live traffic';

    # Wait for two probes of EXCH3's OWA after the ejection, each of
    # which could have re-admitted it: healthcheck.htm still answers.
    my $ex3 = $farm->server('EXCH3');
    my $since = Time::HiRes::time();
    cmp_ok $ex3->wait_hits(2, path => '^/owa/healthcheck\.htm',
                           since => $since, timeout => 10), '>=', 2,
        'two probes of its OWA came after the ejection';
    # the page's probe time is whole seconds: one a second later at least
    my @g = gmtime(int($since) + 1);
    my $after = sprintf '%04d-%02d-%02dT%02d:%02d:%02dZ',
                        $g[5] + 1900, $g[4] + 1, @g[3, 2, 1, 0];
    ok wait_until(sub { my $p = server_of('EXCH3')->{protocols}{owa}{probe};
                        $p && $p->{result} eq 'ok'
                        && ($p->{time} // '') ge $after }, timeout => 5),
        "... and the page has a passing one of $after or later";

    my $s = server_of('EXCH3');
    is $s->{protocols}{owa}{probe}{result}, 'ok', 'its probes pass';
    is $s->{protocols}{owa}{state}, 'ejected', 'and it stays ejected';
    is scalar(EH::Front::changes($ng, 'readmitted')), 0, 'never re-admitted';
};

$ng->stop;
done_testing;
