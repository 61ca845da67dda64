#!/usr/bin/perl

# A short day of real OWA traffic, through the module and through plain
# nginx (max_fails, proxy_next_upstream error timeout http_500 http_502
# http_503) in the same run: signed-in users, anonymous logon loads, stale
# links, users whose mailbox database is down, and forged cookies on the
# errorFE page; then EXCH2 loses its Auth certificate, then EXCH3's OWA
# application pool stops, then all heal; then every server loses its
# Auth certificate (a farm-wide fault), then all heal again.  Per phase:
# the signed-in failures users saw, the servers out, the farm-wide fault
# transitions, the load share.  The module's targets (issue on judging
# real traffic) are asserted; plain nginx's figures are printed beside
# them, and the module is never worse.  bench/real-traffic runs a longer
# day, under load, with HAProxy beside them.
#
# Then every way users sign in (forms, AD FS, OpenID Connect, Basic on
# OWA and EWS, Bearer, NTLM, Kerberos) on farms that send Exchange's
# headers or strip them: issue 26's targets, asserted where the module
# meets them today and TODO where it does not; the table is printed.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Day;
use Time::HiRes qw(sleep time);

my $farm = farm(tls => 1);
my @names = qw(EXCH1 EXCH2 EXCH3);
# The day on a farm that sends Exchange's headers, then on one whose IIS
# outbound rules strip the servers' names, X-FEServer too.
for my $f ([ 'all headers' => [] ],
           [ 'X-FEServer stripped too' => [ @EH::Day::ALL_NAMES ] ]) {
    my ($fname, $strip) = @$f;
    my $day = EH::Day->new(farm => $farm, users => 20, rounds => 3,
                            strip => $strip);
    my $n = $day->signed_in;

    my $module = EH::Day::module_front($farm);
    my $plain = EH::Day::plain_front($farm);
    $_->start for $module, $plain;

    $day->set($_, 'healthy') for @names;

    my @phases = (
        [ quiet => sub {} ],
        [ 'forged cookies' => sub {} ],
        [ 'Auth certificate lost on EXCH2' => sub { $day->set(EXCH2 => 'seed') } ],
        [ '+ EXCH3 app pool stopped' => sub { $day->set(EXCH3 => 'app-pool-stopped') } ],
        [ healed => sub { $day->set($_, 'healthy') for @names; sleep 4.5 } ],
        [ 'Auth certificate lost everywhere' => sub { $day->set($_, 'seed') for @names } ],
        [ 'healed again' => sub { $day->set($_, 'healthy') for @names } ],
    );

    diag '';
    diag "the day, farm: $fname";
    diag sprintf '%-34s %-26s %-22s', 'phase', 'module', 'plain nginx';
    for my $p (@phases) {
        my ($name, $set) = @$p;
        my $phase = $name;
        $name = "$fname: $name" if @$strip;
        $set->();
        my $mark = $module->mark;
        if ($phase ne 'quiet') { $day->forged($module); $day->forged($plain) }
        my $m = $day->traffic($module);
        my $t = $day->traffic($plain);
        my $transitions = EH::Day::transitions($module, $mark);
        my $out = EH::Day::out($module, 'owa', $farm);
        diag sprintf '%-34s %-26s %-22s', $phase,
            "failed $m->{failed}/$n, out [$out]", "failed $t->{failed}/$n";

        cmp_ok $m->{failed}, '<=', $t->{failed}, "$name: never worse than plain nginx";

        if ($phase eq 'Auth certificate lost everywhere') {
            is $transitions, 1, "$name: one farm-wide fault raised, not cleared";
            is $out, '', "$name: every server takes traffic";
            my $html = $module->request(GET => '/status', headers => {
                Accept => 'text/html' })->{body};
            like $html, qr/Farm-wide fault for OWA/i, "$name: the status page says so";
            like $html, qr/Auth certificate is one for the whole organisation/,
                '... and that the Auth certificate is the organisation\'s';
            next;
        }

        is $m->{failed}, 0, "$name: no signed-in user saw a failure";

        if ($phase eq 'healed again') {
            is $transitions, 1, "$name: the farm-wide fault cleared, once";
            is $out, '', "$name: no server out";
            ok EH::Day::even($m->{load}, @names), "$name: load within 10 % of even"
                or diag explain $m->{load};
            next;
        }

        is $transitions, 0, "$name: no farm-wide fault raised or cleared";

        if ($phase eq 'quiet' || $phase eq 'forged cookies') {
            is $out, '', "$name: no server out";
            ok EH::Day::even($m->{load}, @names), "$name: load within 10 % of even"
                or diag explain $m->{load};
        }
        elsif ($phase =~ /^Auth/) {
            like $out, qr/EXCH2/, "$name: EXCH2 out";
            unlike $out, qr/EXCH[13]/, "$name: no other";
            ok EH::Day::even($m->{load}, qw(EXCH1 EXCH3)),
                "$name: load even over the others"
                or diag explain $m->{load};
        }
        elsif ($phase =~ /app pool/) {
            like $out, qr/EXCH3/, "$name: EXCH3 out too";
            # nothing pinned on the last server standing
            is EH::Day::state_of($module, $farm->server('EXCH1')->addr, 'owa'),
                'healthy', "$name: EXCH1, the last one left, healthy";
        }
        else {
            ok wait_until(sub { $day->traffic($module);
                                EH::Day::out($module, 'owa', $farm) eq '' },
                          timeout => 10),
                "$name: every server back after its trial";
        }
    }

    $module->stop;
    $plain->stop(no_check => 1);
}
$farm->strip;

# Every way users sign in (issue 26), on a farm that sends Exchange's
# headers, one that strips the back-end names, one that strips
# X-FEServer too: quiet, EXCH2 broken for that sign-in, EXCH2 healed
# (EH::Day::sign_in_day, each front end started afresh, ejection 1 s).
# Plain nginx reads none of those headers: its figures are measured on
# the farm that sends them all.  Where the module misses a target today
# the test is TODO, with the reason.  Negotiate (NTLM inside it) runs in
# bench/real-traffic.
my $WINDOWS = qr/^(?:ntlm|kerberos)$/;
my %GAP;    # none today
sub gap {
    my ($what, $auth, $farm) = @_;
    return $GAP{$what}{"$auth/$farm"};
}

diag '';
diag $_ for EH::Day::header();
my $t0 = time;
for my $auth (qw(forms adfs oidc basic basic-ews bearer ntlm kerberos)) {
    for my $f (@EH::Day::FARMS) {
        my ($fname, $strip) = @$f;
        my $d = EH::Day->new(farm => $farm, auth => $auth, strip => $strip,
                             users => 12, rounds => 3, noise => 1);
        my $r = $d->sign_in_day(eject => 1, limit => 10, plain => !@$strip);
        diag $_ for EH::Day::row($auth, $fname, $r);
        my $what = "$auth, $fname";
        our $TODO;

        is $r->{module}{quiet}{failed}, 0, "$what: quiet, no failure";
        # every method: GETs and EWS reads are sent on; a request its
        # connection signed in is sent on without credentials, and the
        # next server's 401 makes the client sign in again there
        {
            local $TODO = gap(seen => $auth, $fname);
            is $r->{module}{broken}{failed}, 0,
                "$what: EXCH2 broken, no failure reached a user";
        }
        {
            local $TODO = gap(out => $auth, $fname);
            ok defined $r->{out_after} && $r->{out_after} <= 3,
                "$what: EXCH2 out within its first 3 failures";
        }
        {
            local $TODO = gap(back => $auth, $fname);
            ok defined $r->{back_after} && $r->{back_after} <= 10,
                "$what: healed EXCH2 back within its ejection time and 10 requests";
        }
        {
            local $TODO = gap(healed => $auth, $fname);
            is $r->{module}{healed}{failed}, 0, "$what: healed, no failure";
        }
        is scalar @{ $r->{wrong} }, 0, "$what: no wrong ejection"
            or diag join "\n", @{ $r->{wrong} };
        is $r->{farm}, 0, "$what: no farm-wide fault";
        is_deeply [ @{ $r->{made_up} }, @{ $r->{made_up_answers} || [] } ], [],
            "$what: made-up credentials moved nothing, got no 2xx"
            or diag explain [ @{ $r->{made_up} }, @{ $r->{made_up_answers} || [] } ];

        # each signed-in request placed by the balancer: its load is even;
        # Windows sign-in places a connection once, when it signs in (the
        # few users moved off EXCH2 are no share)
        ok EH::Day::even($r->{module}{quiet}{load}, @names),
            "$what: quiet, load within 10 % of even";
        ok EH::Day::even($r->{module}{broken}{load}, qw(EXCH1 EXCH3)),
            "$what: EXCH2 broken, load within 10 % of even on the others"
            unless $auth =~ $WINDOWS;
        local $TODO = gap(healed => $auth, $fname);
        ok EH::Day::even($r->{module}{healed}{load}, @names),
            "$what: healed, load within 10 % of even";
    }
}
diag sprintf 'every sign-in: %.0f s', time - $t0;

done_testing;
