#!/usr/bin/perl

# Signed-in probes of EWS, ActiveSync and MAPI (exchange_health_probe_signin
# protocols=ews,activesync,mapi): one service call each per interval, with
# the monitoring mailbox's credentials over Basic, straight to each server.
#
# - nginx -t refuses them with tls=off: the password would cross in clear.
# - The calls: EWS's GetFolder of the inbox, ActiveSync's OPTIONS, MAPI's
#   PING, each signed in; a healthy farm answers them all well.
# - EXCH2's EWS breaks (ews-broken) with no user traffic at all: out for
#   ews, and only ews, within two intervals; healed: back within two.
# - MAPI's 500 and ActiveSync's broken application take their server out
#   for that protocol alone.
# - A wrong password: no server out, one warning, at most 3 attempts per
#   server in 15 minutes (one here, as the account's back-off holds).
# - Hostile answers fail the call, never the worker.
# - The password, and its base64 form, are nowhere: the error log at
#   debug level, the status page in every format, the state file, nginx -T.
# - Forms and Basic together: one sign-in per server, then the calls; a
#   password the sign-in refuses sends no call at all.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

my $INTERVAL = 2;
my $USER = 'monitor@contoso.com';
my $PASSWORD = 'Zq8#vL2!p&=w%+k';
my $BASIC = encode_base64("$USER:$PASSWORD", '');
my @BASIC = qw(ews activesync mapi);

sub cred_file { EH::Front::cred_file(@_) }

my $cred = cred_file('monitor.cred', "$USER\n$PASSWORD\n");

my $farm = farm(tls => 1);
$farm->accounts($USER => $PASSWORD);

sub front {
    my ($file, %o) = @_;
    my $protocols = delete $o{protocols} // 'ews,activesync,mapi';
    return EH::Front::signin_nginx($farm, interval => $INTERVAL,
        signin => "file=$file protocols=$protocols", %o);
}

sub signin_of {
    my ($ng, $name, $p) = @_;
    return EH::Front::signin_of($ng, $farm->server($name)->addr, $p);
}


# the probe's calls with Basic credentials, right or not
sub calls {
    my ($name, %f) = @_;
    return grep { ($_->{auth} // '') eq 'basic' }
           $farm->server($name)->requests(%f);
}


# ---------------------------------------------------------------- nginx -t

subtest 'nginx -t: Basic only over TLS, and only where it serves' => sub {
    my ($rc, $out) = front($cred, tls => 'tls=off')->test_config;
    isnt $rc, 0, 'tls=off: refused';
    like $out, qr/send the password with Basic in every request: remove "tls=off" from "exchange_health_probe"/,
        '... saying why and what to do';
    unlike $out, qr/\Q$PASSWORD\E|\Q$BASIC\E/, '... without the password';

    ($rc, $out) = front($cred, tls => 'tls=off', protocols => 'owa,ecp')->test_config;
    is $rc, 0, 'forms alone with tls=off: as before' or diag $out;

    ($rc, $out) = front($cred, protocols => 'owa,oab')->test_config;
    isnt $rc, 0, 'oab: refused';
    like $out, qr/signed-in probes serve "owa", "ecp", "ews", "activesync" and "mapi" only, not all of "protocols=owa,oab"/,
        '... naming the ones it serves';

    ($rc, $out) = front($cred)->test_config;
    is $rc, 0, 'ews, activesync and mapi over TLS: accepted' or diag $out;
};

my $ng = front($cred);
$ng->start;

subtest 'every server answers the three calls, signed in' => sub {
    ok wait_until(sub { EH::Front::signin_all_ok($ng, $farm, @BASIC) }, timeout => 4 * $INTERVAL + 2),
       'ews, activesync and mapi of every server: ok';

    my $b = $farm->server('EXCH1');
    my $t0 = time;
    my $n = scalar calls('EXCH1', path => '^/EWS/');
    ok wait_until(sub { calls('EXCH1', path => '^/EWS/') >= $n + 3 },
                  timeout => 4 * $INTERVAL + 2), 'three more intervals';

    my ($ews) = reverse calls('EXCH1', path => '^/EWS/Exchange\.asmx$', method => 'POST');
    ok $ews, 'EWS: POST /EWS/Exchange.asmx';
    like $ews->{body}, qr{<m:GetFolder>.*<t:BaseShape>IdOnly</t:BaseShape>.*<t:DistinguishedFolderId Id="inbox"/>}s,
        '... a GetFolder of the inbox, its id alone';
    is $ews->{headers}{authorization}, "Basic $BASIC", '... with the mailbox\'s Basic credentials';
    is $ews->{headers}{host}, 'mail.contoso.com', '... and the farm\'s name';
    is $ews->{signin}, 'signed-in', '... which the server accepts';
    my ($eas) = reverse calls('EXCH1', path => '^/Microsoft-Server-ActiveSync$');
    is $eas && $eas->{method}, 'OPTIONS', 'ActiveSync: OPTIONS /Microsoft-Server-ActiveSync';
    my ($mapi) = reverse calls('EXCH1', path => '^/mapi/emsmdb/');
    is $mapi && $mapi->{method}, 'POST', 'MAPI: POST /mapi/emsmdb/';
    is $mapi && $mapi->{headers}{'x-requesttype'}, 'PING', '... X-RequestType: PING';
    is $mapi && $mapi->{query}, 'MailboxId=monitor%40contoso.com', '... for the mailbox';

    # the load on a server per interval (docs/performance.md)
    my %load;
    $load{"$_->{method} $_->{path}"}++ for $b->requests(since => $t0);
    my $per = $load{'POST /EWS/Exchange.asmx'} // 0;
    ok $per >= 3 && $per <= 4, "$per EWS calls in those intervals";
    ok abs(($load{'OPTIONS /Microsoft-Server-ActiveSync'} // 0) - $per) <= 1, 'as many ActiveSync';
    ok abs(($load{'POST /mapi/emsmdb/'} // 0) - $per) <= 1, 'as many MAPI';
    note 'EXCH1: ' . join ', ', map { "$_ $load{$_}" } sort keys %load;
    is scalar(my @f = $farm->requests(path => '^/owa/auth\.owa')), 0, 'no forms sign-in: none asked for';

    my $s = signin_of($ng, 'EXCH2', 'mapi');
    is $s->{user}, $USER, 'the status page names the mailbox';
    like $ng->request(GET => '/status')->{body},
         qr/Signed-in probe as <b>monitor\@contoso\.com<\/b>: ews <span class="badge ">ok.* activesync <span class="badge ">ok.* mapi <span class="badge ">ok/s,
         'the HTML page shows the three';
};

sub changed_in_time { EH::Front::changed_in_time($ng, $farm, $INTERVAL, @_) }

subtest 'EXCH2\'s EWS breaks, no user traffic: out for ews within two intervals' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->preset('ews-broken');

    changed_in_time('ejected', 'EXCH2', 'ews', $m, $t0);

    my ($line) = grep { $_->{server} eq 'EXCH2' } EH::Front::changes($ng, 'ejected', since => $m);
    like $line->{line}, qr/ejected for ews for .* after 2 failures in a row of its signed-in probe as "monitor\@contoso\.com": rule "signed-in-probe" on POST \/EWS\/Exchange\.asmx, status 500: a:ErrorInternalServerError/,
        'the line says what the call met';
    is signin_of($ng, 'EXCH2', 'ews')->{result}, 'failed', 'the status page: failed';
    is signin_of($ng, 'EXCH2', 'ews')->{why}, 'a:ErrorInternalServerError', '... and why';
    is signin_of($ng, 'EXCH2', $_)->{result}, 'ok', "$_ still ok" for qw(activesync mapi);
    is join(',', map { "$_->{server} $_->{protocol}" } EH::Front::changes($ng, 'ejected', since => $m)),
       'EXCH2 ews', 'ews alone is out';

    my $t1 = time;
    my @st = map { $ng->request(POST => '/EWS/Exchange.asmx', signed_in => "user$_",
                                body => '<soap:Envelope/>')->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 9 ], 'the users after get 200';
    is scalar(grep { ($_->{auth} // '') ne 'basic' }
              $farm->server('EXCH2')->requests(path => '^/EWS/', since => $t1)), 0,
       'and none of them meets EXCH2';
};

subtest 'healed: back within two intervals, no user request needed' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->heal;

    changed_in_time('readmitted', 'EXCH2', 'ews', $m, $t0);
    like join("\n", map { $_->{line} } EH::Front::changes($ng, 'readmitted', since => $m)),
         qr/re-admitted for ews after a good answer to its signed-in probe as "monitor\@contoso\.com" of POST \/EWS\/Exchange\.asmx/,
         'the line says the call\'s answer did it';
};

subtest 'MAPI\'s 500 and ActiveSync\'s broken application: their protocol out' => sub {
    my $m = $ng->mark;
    $farm->server('EXCH3')->preset('mapi-broken');
    $farm->server('EXCH1')->preset('activesync-broken');
    my %want = ('EXCH3 mapi' => 1, 'EXCH1 activesync' => 1);
    ok wait_until(sub { my %e = map { ("$_->{server} $_->{protocol}" => 1) }
                                EH::Front::changes($ng, 'ejected', since => $m);
                        2 == grep { $e{$_} } keys %want }, timeout => 4 * $INTERVAL + 4),
       'EXCH3 out for mapi, EXCH1 for activesync';
    is join(',', sort map { "$_->{server} $_->{protocol}" } EH::Front::changes($ng, 'ejected', since => $m)),
       'EXCH1 activesync,EXCH3 mapi', 'and nothing else';
    is signin_of($ng, 'EXCH3', 'mapi')->{why}, 'X-ResponseCode 1', 'MAPI: why';
    is signin_of($ng, 'EXCH1', 'activesync')->{why}, 'status 500', 'ActiveSync: why';
    $_->heal for $farm->servers;
    ok wait_until(sub { 2 == grep { $_->{server} =~ /EXCH[13]/ }
                             EH::Front::changes($ng, 'readmitted', since => $m) },
                  timeout => 3 * $INTERVAL + 2),
       'both back when healed';
};

$ng->stop;

# ---------------------------------------------------------------- hostile

my $huge = 'x' x 20000;
$farm->server('EXCH1')->prepend({ path => '^/EWS/', raw => "\x00\xffNOT HTTP\r\n\r\n" });
$farm->server('EXCH2')->prepend(
    { path => '^/EWS/', status => 200, body => "<a ResponseClass=\"Success" . ('y' x 30000) },
    { path => '^/Microsoft-Server-ActiveSync', status => 200, add_headers => [[ 'X-Big' => $huge ]] });
$farm->server('EXCH3')->prepend(
    { path => '^/EWS/', status => 500,
      body => '<s:Fault><faultcode>a:' . ('A' x 500) . '%n%s</faultcode></s:Fault>' },
    { path => '^/mapi/', status => 302, headers => { Location => '/mapi/' } });
my $ng3 = front($cred);
$ng3->start;

subtest 'hostile answers fail the call, never the worker' => sub {
    my $pids = join ',', sort $ng3->worker_pids;
    my %want = ('EXCH1 ews' => qr/^not an HTTP answer$/,
                'EXCH2 ews' => qr/^status 200: no ResponseClass="Success" in the answer$/,
                'EXCH3 ews' => qr/^a:A{45}$/,
                'EXCH2 activesync' => qr/^the answer's header is cut short or over 16 KB$/);
    for my $k (sort keys %want) {
        my ($name, $p) = split / /, $k;
        ok wait_until(sub { (signin_of($ng3, $name, $p)->{why} // '') =~ $want{$k} },
                      timeout => 3 * $INTERVAL + 2),
           "$k: " . (signin_of($ng3, $name, $p)->{why} // '');
        is signin_of($ng3, $name, $p)->{result}, 'failed', "$k: failed";
    }
    ok wait_until(sub { (signin_of($ng3, 'EXCH3', 'mapi')->{result} // '') eq 'unclear' },
                  timeout => 2 * $INTERVAL + 2),
       'EXCH3 mapi: a redirect is not followed, and no verdict';
    is join(',', sort $ng3->worker_pids), $pids, 'the same workers throughout';
};

$ng3->stop;
$farm->heal;

# ---------------------------------------------------------------- wrong password

my $wrong = cred_file('wrong.cred', "$USER\nnot-$PASSWORD\n");
$farm->clear_logs;
my $ng2 = front($wrong);
$ng2->start;

subtest 'a wrong password: a warning, no server out, no storm of attempts' => sub {
    ok wait_until(sub { 3 == grep { (signin_of($ng2, $_, 'ews')->{result} // '') eq 'refused' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'every server refused the credentials';

    my $b = $farm->server('EXCH1');
    my $n = $b->hits(path => '^/owa/healthcheck\.htm');
    is $b->wait_hits($n + 5, path => '^/owa/healthcheck\.htm', timeout => 6 * $INTERVAL + 2),
       $n + 5, 'five more intervals went by';

    for my $s ($farm->names) {
        my @c = calls($s);
        cmp_ok scalar(@c), '<=', 3, "$s: " . @c . ' attempts (at most 3 in 15 minutes)';
        cmp_ok scalar(@c), '<=', 1, "$s: ... none after the account was refused";
        is scalar(grep { ($_->{signin} // '') ne 'refused' } @c), 0, "$s: ... each refused";
    }
    is join(',', map { signin_of($ng2, 'EXCH2', $_)->{result} // '-' } @BASIC),
       'refused,refused,refused', 'every protocol shows it';
    my @warn = $ng2->grep_error_log(qr/\[warn\].*refused the signed-in probe's sign-in/);
    is scalar(@warn), 1, 'one warning: one account, one interval';
    like $warn[0], qr/as "monitor\@contoso\.com" \(status 401\): check the password in \Q$wrong\E; no server is ejected for it/,
        '... that says what to do';
    is scalar(EH::Front::changes($ng2, 'ejected')), 0, 'no server ejected';

    spew($wrong, "$USER\n$PASSWORD\n");
    $ng2->reload;
    ok wait_until(sub { EH::Front::signin_all_ok($ng2, $farm, @BASIC) }, timeout => 3 * $INTERVAL + 2),
       'fixed and reloaded: every call answers well';
};

# ---------------------------------------------------------------- secrecy

subtest 'the password, and its base64 form, are nowhere' => sub {
    my %where = EH::Front::secret_places($ng2, 'debug' => $ng);
    like $where{'status Prometheus'}, qr/^exchange_health_signin_ok\{[^}]*protocol="mapi"\} 1$/m,
        'Prometheus: exchange_health_signin_ok of mapi';
    like $where{'nginx -T'}, qr/exchange_health_probe_signin file=/, 'nginx -T shows the directive';
    ok length $where{'state file'}, 'the state file was written';
    my $nginx = $ENV{EH_NGINX} // '/usr/sbin/nginx';
    SKIP: {
        skip 'nginx built without --with-debug', 1 unless `$nginx -V 2>&1` =~ /--with-debug/;
        like $where{'error log, debug'}, qr/\[debug\].*signed-in call of peer/,
            'the error log is at debug level, with the calls';
    }
    my $wrong64 = encode_base64("$USER:not-$PASSWORD", '');
    for my $w (sort keys %where) {
        unlike $where{$w}, qr/\Q$PASSWORD\E/, "$w: not the password";
        unlike $where{$w}, qr/\Q$BASIC\E|\Q$wrong64\E/, "$w: nor its base64 form";
        unlike $where{$w}, qr/\Q${\ substr($BASIC, 28, 12)}\E/, "$w: nor a piece of it";
    }
    ok scalar(grep { ($_->{headers}{authorization} // '') eq "Basic $BASIC" }
              $farm->server('EXCH1')->requests(path => '^/EWS/')),
       'only the calls carry it, to Exchange';
};

# ---------------------------------------------------------------- forms and Basic

subtest 'forms and Basic together: one sign-in; refused, no call at all' => sub {
    $farm->clear_logs;
    my $ng4 = front($cred, protocols => 'owa,ecp,ews');
    $ng4->start;
    ok wait_until(sub { EH::Front::signin_all_ok($ng4, $farm, qw(owa ecp ews)) }, timeout => 4 * $INTERVAL + 2),
       'owa, ecp and ews of every server: ok';
    is scalar(my @p = $farm->server('EXCH1')->requests(path => '^/owa/auth\.owa')), 1,
       'EXCH1: one forms sign-in';
    my @c = calls('EXCH1');
    ok @c >= 1 && !grep({ ($_->{signin} // '') ne 'signed-in' } @c),
       'its EWS calls are signed in (' . @c . ')';
    is signin_of($ng4, 'EXCH1', 'activesync')->{result}, undef, 'activesync: not asked';
    $ng4->stop;

    $farm->clear_logs;
    my $bad = cred_file('bad.cred', "$USER\nnot-$PASSWORD\n");
    my $ng5 = front($bad, protocols => 'owa,ews');
    $ng5->start;
    ok wait_until(sub { 3 == grep { (signin_of($ng5, $_, 'ews')->{result} // '') eq 'refused' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'a wrong password: ews refused on every server';
    my $b = $farm->server('EXCH1');
    my $n = $b->hits(path => '^/owa/healthcheck\.htm');
    is $b->wait_hits($n + 3, path => '^/owa/healthcheck\.htm', timeout => 4 * $INTERVAL + 2),
       $n + 3, 'three more intervals went by';
    for my $s ($farm->names) {
        is scalar(my @x = calls($s)), 0, "$s: the forms sign-in refused, no Basic call";
        cmp_ok scalar(my @y = $farm->server($s)->requests(path => '^/owa/auth\.owa')), '<=', 1,
            "$s: one sign-in attempt";
    }
    $ng5->stop;
};

done_testing;
