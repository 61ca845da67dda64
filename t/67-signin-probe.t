#!/usr/bin/perl

# Signed-in probes (exchange_health_probe_signin): with a monitoring
# mailbox's credentials, each server is signed in to with OWA's forms
# and its OWA and ECP pages are asked for with that session, every
# interval, straight to the server.
#
# - nginx -t refuses a credentials file others may read, or not root's.
# - EXCH2 loses its Auth certificate with no user traffic at all: out for
#   owa and ecp within two probe intervals; the users after never meet it,
#   not even as a trial while the probe still finds it broken.
# - Healed: back within two intervals, with no user request.
# - One sign-in per server, whatever the number of workers; an expired
#   session is signed in again.
# - A wrong password: a warning, no server out, no sign-in storm.
# - Hostile answers (garbage, a huge Set-Cookie, a redirect loop) fail the
#   probe, never the worker.
# - The password is nowhere: the error log at debug level, the status page
#   in every format, the state file, nginx -T.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes qw(time);

my $INTERVAL = 2;
my $USER = 'CONTOSO\\monitor';
my $PASSWORD = 'Pw9f3kQz7!&=x%+y';
(my $PASSWORD_ESCAPED = $PASSWORD) =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;

sub cred_file { EH::Front::cred_file(@_) }

my $cred = cred_file('monitor.cred', "$USER\n$PASSWORD\n");

my $farm = farm(tls => 1);
$farm->accounts($USER => $PASSWORD);

sub front {
    my ($file, %o) = @_;
    return EH::Front::signin_nginx($farm, interval => $INTERVAL,
        probe => 'owa,ecp', signin => "file=$file", %o);
}

sub signin_of {
    my ($ng, $name, $p) = @_;
    return EH::Front::signin_of($ng, $farm->server($name)->addr, $p);
}

sub posts {
    my ($name, %f) = @_;
    return scalar $farm->server($name)->requests(path => '^/owa/auth\.owa',
                                                 method => 'POST', %f);
}

# what no user sent: every request the farm saw is a probe's
sub user_requests {
    my ($since) = @_;
    return grep { ($_->{headers}{'user-agent'} // '') !~ /exchange_health probe/ }
           $farm->requests(since => $since);
}

# ---------------------------------------------------------------- nginx -t

subtest 'nginx -t refuses credentials others may read, or not root\'s' => sub {
    my $open = cred_file('open.cred', "$USER\n$PASSWORD\n", 0644);
    my ($rc, $out) = front($open)->test_config;
    isnt $rc, 0, 'mode 644: refused';
    like $out, qr/others than its owner may read or change it \(mode 644\): run "chmod 600 \Q$open\E"/,
        '... saying how to fix it';
    unlike $out, qr/\Q$PASSWORD\E/, '... without the password';

    my $theirs = cred_file('theirs.cred', "$USER\n$PASSWORD\n");
    chown 65534, -1, $theirs;
    ($rc, $out) = front($theirs)->test_config;
    isnt $rc, 0, 'owned by nobody: refused';
    like $out, qr/belongs to uid 65534: make it root's with "chown root \Q$theirs\E"/,
        '... saying how to fix it';

    my $half = cred_file('half.cred', "$USER\n");
    ($rc, $out) = front($half)->test_config;
    isnt $rc, 0, 'no password line: refused';
    like $out, qr/needs the monitoring mailbox's user on its first line and its password on the second/,
        '... saying what the file holds';

    ($rc, $out) = front($cred)->test_config;
    is $rc, 0, 'mode 600, root\'s: accepted' or diag $out;
};

my $ng = front($cred);
$ng->start;

subtest 'signed in to every server, once each' => sub {
    ok wait_until(sub { 3 == grep { my $n = $_;
                                    2 == grep { (signin_of($ng, $n, $_)->{result} // '') eq 'ok' }
                                         qw(owa ecp) } $farm->names },
                  timeout => 4 * $INTERVAL + 2),
       'owa and ecp of every server answer the signed-in probe';

    # three more probes of EXCH1's OWA with the session: no new sign-in
    my $b = $farm->server('EXCH1');
    my $n = $b->hits(path => '^/owa/$', user => $USER);
    my $t0 = time;
    is $b->wait_hits($n + 3, path => '^/owa/$', user => $USER,
                     timeout => 4 * $INTERVAL + 2), $n + 3,
       'three more signed-in probes of EXCH1';

    # the load on a server per interval (docs/performance.md): a signed-in
    # GET of each protocol, besides healthcheck.htm's, and no sign-in
    my %load;
    $load{$_->{route}}++ for $b->requests(since => $t0);
    my $owa = $load{'owa-page'} // 0;
    ok $owa >= 3 && $owa <= 4, "$owa signed-in GET /owa/ in those intervals";
    ok abs(($load{'ecp-page'} // 0) - $owa) <= 1, 'as many GET /ecp/';
    is $load{'owa-auth'} // 0, 0, 'no sign-in';
    note 'EXCH1, per ' . $owa . ' intervals: ' . join ', ', map { "$_ $load{$_}" } sort keys %load;
    is posts($_), 1, "$_: one sign-in, with two workers" for $farm->names;
    is posts($_, user => $USER) , 1, "$_: as $USER" for $farm->names;

    my ($r) = $b->requests(path => '^/owa/$', user => $USER);
    ok $r && $r->{signed_in}, 'the page is asked for with the session';
    is $r->{headers}{host}, 'mail.contoso.com', 'Host: the farm\'s name';

    my $s = signin_of($ng, 'EXCH2', 'ecp');
    is $s->{user}, $USER, 'the status page names the mailbox';
    is $s->{failed_in_a_row}, 0, '... nothing failed';
    like $ng->request(GET => '/status')->{body},
         qr/Signed-in probe as <b>CONTOSO\\monitor<\/b>: owa <span class="badge ">ok/,
         'the HTML page shows it';
};

# EXCH2's state changes for owa and ecp, each within two intervals (and
# a tick) of $t0, with no user request meanwhile
sub changed_in_time {
    my ($what, $m, $t0) = @_;
    my %at;
    ok wait_until(sub {
            for my $p (qw(owa ecp)) {
                $at{$p} //= time if grep { $_->{protocol} eq $p && $_->{server} eq 'EXCH2' }
                                    EH::Front::changes($ng, $what, since => $m);
            }
            keys(%at) == 2 }, timeout => 4 * $INTERVAL + 4),
       "EXCH2 $what for owa and for ecp";
    for my $p (qw(owa ecp)) {
        cmp_ok $at{$p} - $t0, '<=', 2 * $INTERVAL + 1.5,
            sprintf "%s: within two intervals and a tick (%.1f s)", $p, ($at{$p} // 0) - $t0;
    }
    is scalar(user_requests($t0)), 0, 'no user request meanwhile';
}

subtest 'EXCH2 loses its Auth certificate, no user traffic: out within two intervals' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->preset('seed');

    changed_in_time('ejected', $m, $t0);

    my ($line) = grep { $_->{line} =~ /ejected for owa/ }
                 EH::Front::changes($ng, 'ejected', since => $m);
    like $line->{line}, qr/after 2 failures in a row of its signed-in probe as "CONTOSO\\monitor": rule "signed-in-probe" on GET \/owa\/, status 302: errorFE\.aspx, httpCode 500: /,
        'the line says what the probe met';
    is signin_of($ng, 'EXCH2', 'owa')->{result}, 'failed', 'the status page: failed';
    like signin_of($ng, 'EXCH2', 'ecp')->{why}, qr/^status 500/, '... and why (ECP\'s JSON 500)';

    # past the ejection's 3 s: the probe still finds it broken, so no
    # user's request is its trial
    my $fails = signin_of($ng, 'EXCH2', 'owa')->{failed_in_a_row};
    ok wait_until(sub { (signin_of($ng, 'EXCH2', 'owa')->{failed_in_a_row} // 0) >= $fails + 2 },
                  timeout => 4 * $INTERVAL + 2),
       'two more failing probes (past the 3 s ejection time)';
    my $t1 = time;
    my @st = map { $ng->request(GET => '/owa/', signed_in => "user$_")->{status} } 1 .. 9;
    push @st, map { $ng->request(GET => '/ecp/', signed_in => "user$_")->{status} } 1 .. 9;
    is_deeply \@st, [ (200) x 18 ], 'the users after get 200';
    is scalar(grep { !$_->{user} || $_->{user} ne $USER }
              $farm->server('EXCH2')->requests(path => '^/(?:owa|ecp)/$', since => $t1)), 0,
       'and none of them meets EXCH2';
    my @v = grep { $_->{uri} =~ m{^/(?:owa|ecp)/} } EH::Front::verdicts($ng);
    is join(' ', map { $_->{verdict} } @v), join(' ', ('healthy') x 18),
       'none needed a rescue';
};

subtest 'healed: back within two intervals, no user request needed' => sub {
    my $m = $ng->mark;
    my $t0 = time;
    $farm->server('EXCH2')->heal;

    changed_in_time('readmitted', $m, $t0);
    like join("\n", map { $_->{line} } EH::Front::changes($ng, 'readmitted', since => $m)),
         qr/re-admitted for owa after a good answer to its signed-in probe as "CONTOSO\\monitor" of GET \/owa\//,
         'the line says the probe\'s answer did it';

    my $t1 = time;
    $ng->request(GET => '/owa/', signed_in => "back$_") for 1 .. 12;
    cmp_ok scalar(grep { ($_->{user} // '') ne $USER }
                  $farm->server('EXCH2')->requests(path => '^/owa/$', since => $t1)),
           '>=', 1, 'users reach EXCH2 again';
};

subtest 'an expired session is signed in again' => sub {
    my $b = $farm->server('EXCH1');
    my ($last) = reverse $b->requests(path => '^/owa/$', user => $USER);
    my $sid = $last->{cookies}{sessionid};
    ok $sid, 'the probe sends the sessionid it got';
    $b->prepend({ path => '^/(?:owa|ecp)/', match_headers => { cookie => "sessionid=$sid" },
                  capture => 'owa-redirect-logon' });
    is $b->wait_hits(2, path => '^/owa/auth\.owa', method => 'POST',
                     timeout => 3 * $INTERVAL + 2), 2,
       'EXCH1 sent to the logon page: it signs in again';
    ok wait_until(sub { my ($r) = reverse $b->requests(path => '^/owa/$', user => $USER);
                        $r && $r->{cookies}{sessionid} ne $sid }, timeout => 2 * $INTERVAL + 2),
       'and goes on with the new session';
    is signin_of($ng, 'EXCH1', 'owa')->{result}, 'ok', 'its probe: ok';
    is scalar(grep { $_->{server} eq 'EXCH1' } EH::Front::changes($ng, 'ejected')), 0,
       'EXCH1 never ejected';
    $b->heal;
};

$ng->stop;

# ---------------------------------------------------------------- hostile

# Each server meets its own hostile answer from its first sign-in on.
my $huge = 'x' x 20000;
$farm->server('EXCH1')->prepend({ method => 'POST', path => '^/owa/auth\.owa',
                                  raw => "\x00\xffNOT HTTP AT ALL\r\n\r\n" });
$farm->server('EXCH2')->prepend({ method => 'POST', path => '^/owa/auth\.owa',
                                  status => 302, headers => { Location => '/owa/' },
                                  add_headers => [ map { [ 'Set-Cookie' => "cadata$_=" . ('y' x 900) ] }
                                                   1 .. 5 ] });
$farm->server('EXCH3')->prepend(
    { path => '^/owa/$', signed_in => 1, status => 200,
      add_headers => [[ 'Set-Cookie' => "big=$huge" ]] },
    { path => '^/ecp/$', signed_in => 1, status => 302,
      headers => { Location => '/ecp/' } });
my $ng3 = front($cred);
$ng3->start;

subtest 'hostile answers fail the probe, never the worker' => sub {
    my $pids = join ',', sort $ng3->worker_pids;
    my %want = (EXCH1 => [ owa => qr/^sign-in: not an HTTP answer/ ],
                EXCH2 => [ owa => qr/^sign-in: its cookies are over 3072 bytes/ ],
                EXCH3 => [ owa => qr/^the answer's header is cut short or over 16 KB/ ]);
    for my $name (sort keys %want) {
        my ($p, $re) = @{ $want{$name} };
        ok wait_until(sub { (signin_of($ng3, $name, $p)->{why} // '') =~ $re },
                      timeout => 3 * $INTERVAL + 2),
           "$name: the probe failed: " . (signin_of($ng3, $name, $p)->{why} // '');
        is signin_of($ng3, $name, $p)->{result}, 'failed', "$name: failed";
    }
    ok wait_until(sub { (signin_of($ng3, 'EXCH3', 'ecp')->{why} // '') =~ /redirected elsewhere/ },
                  timeout => 2 * $INTERVAL + 2),
       'EXCH3: a redirect to itself is not followed, and no verdict';
    is signin_of($ng3, 'EXCH3', 'ecp')->{result}, 'unclear', '... unclear';
    is join(',', sort $ng3->worker_pids), $pids, 'the same workers throughout';
};

$ng3->stop;
$farm->heal;

# ---------------------------------------------------------------- wrong password

my $wrong = cred_file('wrong.cred', "$USER\nnot-$PASSWORD\n");
$farm->heal;
$farm->clear_logs;
my $ng2 = front($wrong);
$ng2->start;

subtest 'a wrong password: a warning, no server out, no sign-in storm' => sub {
    my $b = $farm->server('EXCH1');
    ok wait_until(sub { 3 == grep { (signin_of($ng2, $_, 'owa')->{result} // '') eq 'refused' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'every server refused the sign-in';

    # five more intervals, as five more probes of EXCH1's healthcheck.htm
    my $n = $b->hits(path => '^/owa/healthcheck\.htm');
    is $b->wait_hits($n + 5, path => '^/owa/healthcheck\.htm', timeout => 6 * $INTERVAL + 2),
       $n + 5, 'five more intervals went by';

    for my $s ($farm->names) {
        my $p = posts($s);
        cmp_ok $p, '<=', 3, "$s: $p sign-in attempts (at most 3 in 15 minutes)";
        cmp_ok $p, '<=', 1, "$s: ... none after the account was refused";
    }
    my @warn = $ng2->grep_error_log(qr/\[warn\].*refused the signed-in probe's sign-in/);
    is scalar(@warn), 1, 'one warning: one account, one interval';
    like $warn[0], qr/as "CONTOSO\\monitor" \(the logon page again, reason=2\): check the password in \Q$wrong\E; no server is ejected for it/,
        '... that says what to do';
    is scalar(EH::Front::changes($ng2, 'ejected')), 0, 'no server ejected';
    my @st = map { $ng2->request(GET => '/owa/', signed_in => "w$_")->{status} } 1 .. 6;
    is_deeply \@st, [ (200) x 6 ], 'users are served';
    is signin_of($ng2, 'EXCH2', 'ecp')->{why}, 'the sign-in was refused: the logon page again, reason=2',
        'the status page says why';

    # the password fixed, nginx reloaded: signed in at once
    spew($wrong, "$USER\n$PASSWORD\n");
    $ng2->reload;
    ok wait_until(sub { 3 == grep { (signin_of($ng2, $_, 'owa')->{result} // '') eq 'ok' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'fixed and reloaded: every server signed in';
};

subtest 'the mailbox fails through every server: its fault, no server out' => sub {
    # its database is down: every server fails it alike
    $_->prepend({ path => '^/owa/$', user => $USER, status => 500,
                  headers => { 'X-OWA-Error' => 'Microsoft.Exchange.Data.Storage.MailboxOfflineException' } })
        for $farm->servers;
    ok wait_until(sub { 3 == grep { (signin_of($ng2, $_, 'owa')->{failed_in_a_row} // 0) >= 3 }
                             $farm->names }, timeout => 5 * $INTERVAL + 2),
       'three failures in a row on every server';
    is scalar(EH::Front::changes($ng2, 'ejected')), 0, 'no server ejected';
    like signin_of($ng2, 'EXCH1', 'owa')->{why}, qr/^status 500: .*MailboxOfflineException/,
        'the status page says why';
    $farm->heal;
    ok wait_until(sub { 3 == grep { (signin_of($ng2, $_, 'owa')->{result} // '') eq 'ok' }
                             $farm->names }, timeout => 3 * $INTERVAL + 2),
       'the mailbox back: ok everywhere';
};

# ---------------------------------------------------------------- secrecy

subtest 'the password is nowhere' => sub {
    my %where = EH::Front::secret_places($ng2, 'debug' => $ng);
    like $where{'status JSON'}, qr/"signin":\{"user":"CONTOSO\\\\monitor"/, 'JSON names the mailbox';
    like $where{'status Prometheus'}, qr/^exchange_health_signin_ok\{upstream="exchange",server="\Q${\ $farm->server('EXCH1')->addr }\E",name="EXCH1",protocol="owa"\} 1$/m,
        'Prometheus: exchange_health_signin_ok';
    like $where{'status Prometheus'}, qr/^exchange_health_signin_refused\{[^}]*protocol="ecp"\} 0$/m,
        'Prometheus: exchange_health_signin_refused';
    like $where{'nginx -T'}, qr/exchange_health_probe_signin file=/, 'nginx -T shows the directive';
    ok length $where{'state file'}, 'the state file was written';
    my $nginx = $ENV{EH_NGINX} // '/usr/sbin/nginx';
    SKIP: {
        skip 'nginx built without --with-debug', 1 unless `$nginx -V 2>&1` =~ /--with-debug/;
        like $where{'error log, debug'}, qr/\[debug\].*signed-in probe of peer/,
            'the error log is at debug level, with the probe\'s decisions';
    }
    for my $w (sort keys %where) {
        unlike $where{$w}, qr/\Q$PASSWORD\E/, "$w: not the password";
        unlike $where{$w}, qr/\Q$PASSWORD_ESCAPED\E/, "$w: nor as the form sends it";
    }
    ok scalar(grep { ($_->{body} // '') =~ /password=\Q$PASSWORD_ESCAPED\E&/ }
              $farm->server('EXCH1')->requests(path => '^/owa/auth\.owa')),
       'only the sign-in\'s body carries it, to Exchange';
};

# ---------------------------------------------------------------- scope=server

subtest 'scope=server: the first protocol answers for the whole server' => sub {
    $farm->clear_logs;
    my $ng4 = front($cred, balancer => 'exchange_health zone=exchange scope=server;');
    $ng4->start;
    my $m = $ng4->mark;
    $farm->server('EXCH3')->preset('seed');
    ok wait_until(sub { grep { $_->{server} eq 'EXCH3' } EH::Front::changes($ng4, 'ejected', since => $m) },
                  timeout => 4 * $INTERVAL + 4),
       'EXCH3 ejected';
    my @e = EH::Front::changes($ng4, 'ejected', since => $m);
    is join(',', map { $_->{protocol} } @e), 'all protocols', 'once, for all protocols';
    is $farm->server('EXCH3')->hits(path => '^/ecp/$', user => $USER), 0,
       'its ECP is not probed: OWA answers for the server';
    $farm->server('EXCH3')->heal;
    ok wait_until(sub { grep { $_->{server} eq 'EXCH3' } EH::Front::changes($ng4, 'readmitted', since => $m) },
                  timeout => 3 * $INTERVAL + 2),
       'and re-admitted when healed';
    is scalar(grep { $_->{server} eq 'EXCH3' } EH::Front::changes($ng4, 'ejected', since => $m)), 1,
       'no flapping between protocols';
    $ng4->stop;
};

done_testing;
