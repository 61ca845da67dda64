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

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Day;
use Time::HiRes qw(sleep);

my $farm = farm(tls => 1);
my @names = qw(EXCH1 EXCH2 EXCH3);
my $day = EH::Day->new(farm => $farm, users => 20, rounds => 3);
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

diag sprintf '%-34s %-26s %-22s', 'phase', 'module', 'plain nginx';
for my $p (@phases) {
    my ($name, $set) = @$p;
    $set->();
    my $mark = $module->mark;
    if ($name ne 'quiet') { $day->forged($module); $day->forged($plain) }
    my $m = $day->traffic($module);
    my $t = $day->traffic($plain);
    my $transitions = EH::Day::transitions($module, $mark);
    my $out = EH::Day::out($module);
    diag sprintf '%-34s %-26s %-22s', $name,
        "failed $m->{failed}/$n, out [$out]", "failed $t->{failed}/$n";

    cmp_ok $m->{failed}, '<=', $t->{failed}, "$name: never worse than plain nginx";

    if ($name eq 'Auth certificate lost everywhere') {
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

    if ($name eq 'healed again') {
        is $transitions, 1, "$name: the farm-wide fault cleared, once";
        is $out, '', "$name: no server out";
        ok EH::Day::even($m->{load}, @names), "$name: load within 10 % of even"
            or diag explain $m->{load};
        next;
    }

    is $transitions, 0, "$name: no farm-wide fault raised or cleared";

    if ($name eq 'quiet' || $name eq 'forged cookies') {
        is $out, '', "$name: no server out";
        ok EH::Day::even($m->{load}, @names), "$name: load within 10 % of even"
            or diag explain $m->{load};
    }
    elsif ($name =~ /^Auth/) {
        like $out, qr/EXCH2/, "$name: EXCH2 out";
        unlike $out, qr/EXCH[13]/, "$name: no other";
        ok EH::Day::even($m->{load}, qw(EXCH1 EXCH3)),
            "$name: load even over the others"
            or diag explain $m->{load};
    }
    elsif ($name =~ /app pool/) {
        like $out, qr/EXCH3/, "$name: EXCH3 out too";
    }
    else {
        ok wait_until(sub { $day->traffic($module); EH::Day::out($module) eq '' },
                      timeout => 10),
            "$name: every server back after its trial";
    }
}

$module->stop;
$plain->stop(no_check => 1);
done_testing;
