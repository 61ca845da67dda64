#!/usr/bin/perl

# Signed-in probes of EWS, ActiveSync and MAPI with NTLM
# (exchange_health_probe_signin auth=ntlm, auth=negotiate), for a farm
# whose virtual directories take Windows sign-in only.  The simulated
# servers check the monitoring account's NTLMv2 for real (EH::Ntlm::v2_ok,
# itself checked against MS-NLMP 4.2.4 here), and refuse Basic.
#
# - nginx -t: auth= named, and NTLM refused with tls=off.
# - Each call is an NTLM handshake: the NEGOTIATE on a connection, a 401
#   with the CHALLENGE, the AUTHENTICATE on that same connection, whose
#   answer is the call's; "CONTOSO\monitor" signs in as monitor of
#   CONTOSO.  Two requests per call and interval.
# - EXCH2's EWS breaks (ews-broken) with no user traffic at all: out for
#   ews within two intervals; healed: back within two, no user request.
# - Negotiate wrapping NTLM: the same messages under "Negotiate".
# - A 401 to the NEGOTIATE with no CHALLENGE, or one that cannot be read,
#   and a server that closes the connection after its CHALLENGE: that
#   server's call fails, saying which; never the account's refusal, so the
#   other servers go on signing in.
# - A wrong password: the server's 401 to the AUTHENTICATE; no server
#   out, one warning, at most 3 attempts per server in 15 minutes.
# - Extended Protection required (EH::Backend's extended_protection):
#   an AUTHENTICATE without channel binding is refused though its
#   password is right; the probe's carry the token of each server's
#   certificate and the MIC, and sign in.
# - The password, its NT hash, NTOWFv2, each AUTHENTICATE's session key
#   and the AUTHENTICATE messages are nowhere: the error log at debug level, the status page in every
#   format, the state file, nginx -T.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Ntlm;
use Digest::MD4 qw(md4_hex);
use MIME::Base64 qw(decode_base64);
use Encode ();
use Time::HiRes qw(time);

my $INTERVAL = 2;
my $USER = 'CONTOSO\monitor';
my $PASSWORD = 'Zq8#vL2!p&=w%+k';
my @CALLS = qw(ews activesync mapi);

is unpack('H*', EH::Ntlm::ntowfv2('Password', 'User', 'Domain')),
   '0c868a403bfd7a93a3001ef22ef02e3f',
   'the harness\'s NTOWFv2 is MS-NLMP 4.2.4.1.1\'s';

my $cred = EH::Front::cred_file('monitor.cred', "$USER\n$PASSWORD\n");

my $farm = farm(tls => 1);
$farm->accounts($USER => $PASSWORD);
$farm->windows(1);

sub front {
    my ($file, %o) = @_;
    my $auth = delete $o{auth} // 'ntlm';
    return EH::Front::signin_nginx($farm, interval => $INTERVAL,
        signin => "file=$file protocols=ews,activesync,mapi auth=$auth", %o);
}

sub signin_of {
    my ($ng, $name, $p) = @_;
    return EH::Front::signin_of($ng, $farm->server($name)->addr, $p);
}


# the probe's requests, handshakes included
sub probe_requests {
    my ($name, %f) = @_;
    return grep { ($_->{headers}{'user-agent'} // '') =~ /exchange_health probe/
                  && $_->{path} !~ /healthcheck/ }
           $farm->server($name)->requests(%f);
}

# the AUTHENTICATE messages the account sent, right or not
sub type3s {
    my ($name, %f) = @_;
    return grep { ($_->{auth} // '') eq 'ntlm' } $farm->server($name)->requests(%f);
}


# ---------------------------------------------------------------- nginx -t

subtest 'nginx -t: auth= named, NTLM only over TLS' => sub {
    my ($rc, $out) = front($cred, tls => 'tls=off')->test_config;
    isnt $rc, 0, 'auth=ntlm with tls=off: refused';
    like $out, qr/sign in with NTLM, whose answers an eavesdropper can test passwords against: remove "tls=off"/,
        '... saying why and what to do';
    ($rc, $out) = front($cred, auth => 'kerberos')->test_config;
    isnt $rc, 0, 'auth=kerberos: refused';
    like $out, qr/invalid parameter "auth=kerberos", use "file=", "protocols=" or "auth=" \(basic, ntlm, negotiate\)/,
        '... naming what it takes';
    ($rc, $out) = front($cred)->test_config;
    is $rc, 0, 'auth=ntlm over TLS: accepted' or diag $out;
    unlike $out, qr/\Q$PASSWORD\E/, '... without the password';
};

my $ng = front($cred);
$ng->start;

subtest 'every server answers the three calls, signed in with NTLMv2' => sub {
    ok wait_until(sub { EH::Front::signin_all_ok($ng, $farm, @CALLS) }, timeout => 4 * $INTERVAL + 2),
       'ews, activesync and mapi of every server: ok'
        or diag explain { map { my $n = $_; ($n => { map { ($_ => signin_of($ng, $n, $_)) } @CALLS }) } $farm->names };

    my $t0 = time;
    my $n = scalar type3s('EXCH1', path => '^/EWS/');
    ok wait_until(sub { type3s('EXCH1', path => '^/EWS/') >= $n + 3 },
                  timeout => 4 * $INTERVAL + 2), 'three more intervals';

    my @ews = probe_requests('EXCH1', path => '^/EWS/Exchange\.asmx$', since => $t0);
    my ($t3) = grep { ($_->{auth} // '') eq 'ntlm' } @ews;
    ok $t3, 'an AUTHENTICATE to EWS';
    my ($t1) = grep { $_->{conn} eq $t3->{conn} && $_->{n} == $t3->{n} - 1 }
               $farm->server('EXCH1')->requests;
    ok $t1, '... after another request on the same connection';
    like $t1->{headers}{authorization}, qr/^NTLM TlRMTVNTUAAB/, '... the NEGOTIATE';
    is $t1->{status}, 401, '... answered with 401';
    is $t1->{ntlm}, 'challenge', '... and the CHALLENGE';
    like $t3->{headers}{authorization}, qr/^NTLM TlRMTVNTUAAD/, 'then the AUTHENTICATE';
    is $t3->{signin}, 'signed-in', '... whose NTLMv2 the server checked';
    is $t3->{ntlm_user}, 'monitor', '... as monitor';
    is $t3->{status}, 200, '... and the call\'s answer';
    is $t3->{headers}{host}, 'mail.contoso.com', '... to the farm\'s name';
    like $t3->{body}, qr{<m:GetFolder>}, '... the GetFolder of the inbox';
    is $t1->{headers}{connection}, 'keep-alive', 'the NEGOTIATE keeps its connection';
    is $t3->{headers}{connection}, 'close', 'the AUTHENTICATE\'s ends it';

    # the load on a server per interval (docs/performance.md)
    my %load;
    $load{"$_->{method} $_->{path} $_->{status}"}++ for probe_requests('EXCH1', since => $t0);
    note 'EXCH1: ' . join ', ', map { "$_ $load{$_}" } sort keys %load;
    my $per = $load{'POST /EWS/Exchange.asmx 200'} // 0;
    ok $per >= 3 && $per <= 4, "$per EWS calls in those intervals";
    ok abs(($load{'POST /EWS/Exchange.asmx 401'} // 0) - $per) <= 1, '... each after its 401';
    for my $k ('OPTIONS /Microsoft-Server-ActiveSync', 'POST /mapi/emsmdb/') {
        ok abs(($load{"$k 200"} // 0) - $per) <= 1 && abs(($load{"$k 401"} // 0) - $per) <= 1,
           "as many of $k, each two requests";
    }
    is scalar(grep { ($_->{headers}{authorization} // '') =~ /^Basic/ } $farm->requests), 0,
       'no Basic at all';
    is signin_of($ng, 'EXCH2', 'mapi')->{user}, $USER, 'the status page names the mailbox';
};

sub changed_in_time { EH::Front::changed_in_time($ng, $farm, $INTERVAL, @_) }

subtest 'EXCH2\'s EWS breaks, no user traffic: out for ews within two intervals' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->preset('ews-broken');
    $farm->server('EXCH2')->windows(1);

    changed_in_time('ejected', 'EXCH2', 'ews', $m, $t0);

    my ($line) = grep { $_->{server} eq 'EXCH2' } EH::Front::changes($ng, 'ejected', since => $m);
    like $line->{line}, qr/ejected for ews for .* after 2 failures in a row of its signed-in probe as "CONTOSO\\monitor": rule "signed-in-probe" on POST \/EWS\/Exchange\.asmx, status 500: a:ErrorInternalServerError/,
        'the line says what the call met';
    is signin_of($ng, 'EXCH2', 'ews')->{why}, 'a:ErrorInternalServerError', 'the status page says why';
    is signin_of($ng, 'EXCH2', $_)->{result}, 'ok', "$_ still ok" for qw(activesync mapi);
    is join(',', map { "$_->{server} $_->{protocol}" } EH::Front::changes($ng, 'ejected', since => $m)),
       'EXCH2 ews', 'ews alone is out';
    my @t3 = type3s('EXCH2', path => '^/EWS/', since => $t0);
    ok @t3 && !grep({ $_->{signin} ne 'signed-in' } @t3),
       'the broken server still signed the account in (' . @t3 . ')';
};

subtest 'healed: back within two intervals, no user request needed' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->heal;
    $farm->server('EXCH2')->windows(1);

    changed_in_time('readmitted', 'EXCH2', 'ews', $m, $t0);
    like join("\n", map { $_->{line} } EH::Front::changes($ng, 'readmitted', since => $m)),
         qr/re-admitted for ews after a good answer to its signed-in probe as "CONTOSO\\monitor" of POST \/EWS\/Exchange\.asmx/,
         'the line says the call\'s answer did it';
};

# ---------------------------------------------------------------- Negotiate

subtest 'Negotiate wrapping NTLM, and a UPN' => sub {
    my $upn = 'monitor@contoso.com';
    $farm->accounts($upn => $PASSWORD);
    my $f = EH::Front::cred_file('upn.cred', "$upn\n$PASSWORD\n");
    my $ng2 = front($f, auth => 'negotiate');
    $ng2->start;
    my $t0 = time;
    ok wait_until(sub { EH::Front::signin_all_ok($ng2, $farm, @CALLS) }, timeout => 4 * $INTERVAL + 2),
       'every call of every server: ok';
    my ($t3) = reverse type3s('EXCH3', path => '^/mapi/', since => $t0);
    like $t3 && $t3->{headers}{authorization}, qr/^Negotiate TlRMTVNTUAAD/,
        'the AUTHENTICATE under Negotiate';
    is $t3 && $t3->{ntlm_user}, $upn, '... signed in as the UPN, with no domain';
    $ng2->stop;
    $farm->accounts($USER => $PASSWORD);
};

# ---------------------------------------------------------------- hostile

subtest 'a broken CHALLENGE, no CHALLENGE, a close after it, a 500: each that server\'s own' => sub {
    use MIME::Base64 qw(encode_base64);
    $farm->server('EXCH3')->prepend({ path => '^/EWS/', status => 401,
        add_headers => [ [ 'WWW-Authenticate' => 'NTLM ' . encode_base64(
            "NTLMSSP\0" . pack('V', 2) . ("\xff" x 40), '') ] ] });
    # a 401 that offers NTLM but carries no CHALLENGE: a server whose
    # Windows sign-in is broken (or a device before it that strips it)
    $farm->server('EXCH3')->prepend({ path => '^/mapi/', status => 401,
        add_headers => [ [ 'WWW-Authenticate' => 'NTLM' ] ] });
    # a server that ends the connection after its CHALLENGE
    $farm->server('EXCH1')->prepend({ path => '^/Microsoft-Server-ActiveSync',
                                      basic => 1, keepalive => 0 });
    $farm->server('EXCH2')->prepend({ path => '^/mapi/', status => 500 });
    my $ng4 = front($cred);
    $ng4->start;
    my $pids = join ',', sort $ng4->worker_pids;
    ok wait_until(sub { (signin_of($ng4, 'EXCH2', 'mapi')->{why} // '') eq 'status 500' },
                  timeout => 3 * $INTERVAL + 2),
       'EXCH2 mapi: the 500 to the NEGOTIATE is the call\'s failure';
    ok wait_until(sub { (signin_of($ng4, 'EXCH3', 'ews')->{result} // '') eq 'failed'
                        && (signin_of($ng4, 'EXCH3', 'mapi')->{result} // '') eq 'failed'
                        && (signin_of($ng4, 'EXCH1', 'activesync')->{result} // '') eq 'failed' },
                  timeout => 3 * $INTERVAL + 2),
       'EXCH3 ews and mapi, EXCH1 activesync: failed, not the account refused'
        or diag explain { EXCH3 => { map { ($_ => signin_of($ng4, 'EXCH3', $_)) } @CALLS },
                          EXCH1 => signin_of($ng4, 'EXCH1', 'activesync') };
    is signin_of($ng4, 'EXCH3', 'ews')->{why}, 'a 401 whose NTLM CHALLENGE cannot be read',
       '... a CHALLENGE past its end: said so';
    is signin_of($ng4, 'EXCH3', 'mapi')->{why}, 'a 401 to the NTLM NEGOTIATE with no CHALLENGE',
       '... a 401 without one: said so';
    is signin_of($ng4, 'EXCH1', 'activesync')->{why},
       'closed the connection after its NTLM CHALLENGE: NTLM needs it kept open',
       '... a close after the CHALLENGE: said so';

    # the other servers go on signing in, interval after interval
    my $t0 = time;
    ok wait_until(sub { type3s('EXCH2', path => '^/EWS/', since => $t0) >= 2
                        && type3s('EXCH1', path => '^/EWS/', since => $t0) >= 2
                        && type3s('EXCH3', path => '^/Microsoft-Server-ActiveSync', since => $t0) >= 2 },
                  timeout => 4 * $INTERVAL + 2),
       'the others\' calls, and EXCH3\'s activesync, go on signing in';
    is join(',', map { my $n = $_; map { signin_of($ng4, $n, $_)->{result} // '-' } @CALLS } qw(EXCH1 EXCH2 EXCH3)),
       'ok,failed,ok,ok,ok,failed,failed,ok,failed', 'every call\'s result';
    is scalar($ng4->grep_error_log(qr/refused the signed-in probe's sign-in/)), 0,
       'no warning of the account refused';
    is join(',', sort $ng4->worker_pids), $pids, 'the same workers throughout';
    $ng4->stop;
    $farm->heal;
    $farm->windows(1);
};

# ---------------------------------------------------------------- Extended Protection

subtest 'Extended Protection required (Exchange 2019 CU14 and later): bound sign-ins' => sub {
    use MIME::Base64 qw(encode_base64 decode_base64);
    $farm->server($_)->extended_protection('require') for $farm->names;

    # the check works: the right password, without channel binding, is
    # refused as IIS refuses it (a probe before this change was so)
    my $b = $farm->server('EXCH1');
    my $c = EH::Client->new(port => $b->port, tls => 1, keepalive => 1,
                            sni => 'mail.contoso.com');
    my $r = $c->request(POST => '/EWS/Exchange.asmx', body => '',
        headers => [ [ Authorization => 'NTLM ' . EH::Ntlm::type1() ] ]);
    my ($tok) = map { /^NTLM (\S+)/ ? $1 : () } @{ $r->{headers}{'www-authenticate'} || [] };
    ok $tok, 'a CHALLENGE';
    my $t3 = EH::Ntlm::type3v2(decode_base64($tok // ''), $PASSWORD, 'monitor', 'CONTOSO');
    my $t0 = time;
    $r = $c->request(POST => '/EWS/Exchange.asmx', body => '',
        headers => [ [ Authorization => 'NTLM ' . encode_base64($t3, '') ] ]);
    is $r->{status}, 401, 'an AUTHENTICATE without channel binding, right password: 401';
    my ($old) = grep { ($_->{headers}{'user-agent'} // '') !~ /exchange_health probe/ }
                type3s('EXCH1', since => $t0);
    is $old && $old->{ep}, 'no-channel-binding', '... refused for its missing binding';
    $c->close;

    # the module's probe: every call of every server signed in, bound
    my $ng5 = front($cred);
    $ng5->start;
    $t0 = time;
    ok wait_until(sub { EH::Front::signin_all_ok($ng5, $farm, @CALLS) }, timeout => 4 * $INTERVAL + 2),
       'EP required: every call of every server signed in'
        or diag explain { map { my $n = $_; ($n => { map { ($_ => signin_of($ng5, $n, $_)) } @CALLS }) } $farm->names };
    my @t3 = grep { ($_->{headers}{'user-agent'} // '') =~ /exchange_health probe/ }
             map { type3s($_, since => $t0) } $farm->names;
    ok @t3 >= 9, scalar(@t3) . ' AUTHENTICATEs of the probe';
    is join(',', sort keys %{{ map { (($_->{ep} // '-') => 1) } @t3 }}), 'bound',
       '... each with the channel binding of the server\'s certificate and the MIC';
    is join(',', sort keys %{{ map { (($_->{signin} // '-') => 1) } @t3 }}), 'signed-in',
       '... and its NTLMv2 right';
    is scalar($ng5->grep_error_log(qr/refused the signed-in probe's sign-in/)), 0,
       'no warning of the account refused';
    my $nginx = $ENV{EH_NGINX} // '/usr/sbin/nginx';
    SKIP: {
        skip 'nginx built without --with-debug', 1 unless `$nginx -V 2>&1` =~ /--with-debug/;
        ok scalar($ng5->grep_error_log(qr/channel bound: yes, MIC: yes/)),
           'the debug log says the AUTHENTICATE was bound, with a MIC';
    }
    $ng5->stop;
    $farm->server($_)->extended_protection('none') for $farm->names;
};

# ---------------------------------------------------------------- secrecy

my $wrong = EH::Front::cred_file('wrong.cred', "$USER\nnot-$PASSWORD\n");

sub secrets {
    my @s;
    for my $pw ($PASSWORD, "not-$PASSWORD") {
        my $nt = md4_hex(Encode::encode('UTF-16LE', $pw));
        my $owf = unpack 'H*', EH::Ntlm::ntowfv2($pw, 'monitor', 'CONTOSO');
        push @s, $pw, $nt, uc $nt, $owf, uc $owf;
    }
    my @t3 = map { /^\S+ (\S+)/ ? $1 : () }
             map { $_->{headers}{authorization} // '' }
             map { type3s($_) } $farm->names;
    # each AUTHENTICATE's session key, HMAC-MD5(NTOWFv2, NTProofStr),
    # which keys its MIC
    for my $m (map { decode_base64($_) } @t3) {
        my ($ntlen, $ntoff) = unpack 'v x2 V', substr($m, 20, 8);
        next unless $ntlen >= 16 && $ntoff + 16 <= length $m;
        for my $pw ($PASSWORD, "not-$PASSWORD") {
            my $key = unpack 'H*', EH::Ntlm::hmac_md5(
                EH::Ntlm::ntowfv2($pw, 'monitor', 'CONTOSO'), substr($m, $ntoff, 16));
            push @s, $key, uc $key;
        }
    }
    return (@s, map { substr $_, 40, 40 } @t3);
}

# every place, for the password and what is made of it
sub nowhere {
    my ($ng, $what) = @_;
    my @secrets = secrets();
    ok @secrets > 10, scalar(@secrets) . ' secrets to look for';
    my %where = EH::Front::secret_places($ng);
    like $where{'nginx -T'}, qr/exchange_health_probe_signin file=\S+ protocols=ews,activesync,mapi auth=ntlm/,
        'nginx -T shows the directive';
    ok length $where{'state file'}, 'the state file was written';
    my $nginx = $ENV{EH_NGINX} // '/usr/sbin/nginx';
    SKIP: {
        skip 'nginx built without --with-debug', 1 unless `$nginx -V 2>&1` =~ /--with-debug/;
        like $where{'error log'}, qr/\[debug\].*$what/,
            'the error log is at debug level, with the handshakes';
    }
    for my $w (sort keys %where) {
        my @found = grep { index($where{$w}, $_) >= 0 } @secrets;
        is scalar(@found), 0, "$w: none of them";
    }
}

subtest 'the password, its NT hash, NTOWFv2, the session keys and the AUTHENTICATEs are nowhere' => sub {
    nowhere($ng, 'challenged, answering with NTLMv2');
};

# ---------------------------------------------------------------- wrong password

$farm->clear_logs;
my $ng3 = front($wrong);
$ng3->start;

subtest 'a wrong password: a warning, no server out, no storm of attempts' => sub {
    ok wait_until(sub { 3 == grep { (signin_of($ng3, $_, 'ews')->{result} // '') eq 'refused' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'every server refused the credentials';

    my $b = $farm->server('EXCH1');
    my $n = $b->hits(path => '^/owa/healthcheck\.htm');
    is $b->wait_hits($n + 5, path => '^/owa/healthcheck\.htm', timeout => 6 * $INTERVAL + 2),
       $n + 5, 'five more intervals went by';

    for my $s ($farm->names) {
        my @c = type3s($s);
        cmp_ok scalar(@c), '<=', 3, "$s: " . @c . ' attempts (at most 3 in 15 minutes)';
        cmp_ok scalar(@c), '<=', 1, "$s: ... none after the account was refused";
        is scalar(grep { ($_->{signin} // '') ne 'refused' } @c), 0, "$s: ... each refused";
        is scalar(grep { ($_->{ntlm} // '') eq 'wrong-password' && $_->{status} == 401 } @c),
           scalar(@c), "$s: ... with a 401";
    }
    is join(',', map { signin_of($ng3, 'EXCH2', $_)->{result} // '-' } @CALLS),
       'refused,refused,refused', 'every protocol shows it';
    my @warn = $ng3->grep_error_log(qr/\[warn\].*refused the signed-in probe's sign-in/);
    is scalar(@warn), 1, 'one warning: one account, one interval';
    like $warn[0], qr/as "CONTOSO\\monitor" \(status 401\): check the password in \Q$wrong\E; no server is ejected for it/,
        '... that says what to do';
    is scalar(EH::Front::changes($ng3, 'ejected')), 0, 'no server ejected';
};

subtest 'a wrong password: nowhere either' => sub {
    nowhere($ng3, 'challenged, answering with NTLMv2');
};

done_testing;
