#!/usr/bin/perl

# A short day of real OWA traffic, through the module and through plain
# nginx (max_fails, proxy_next_upstream error timeout http_500 http_502
# http_503) in the same run: signed-in users, anonymous logon loads, stale
# links, users whose mailbox database is down, and forged cookies on the
# errorFE page; then EXCH2 loses its Auth certificate, then EXCH3's OWA
# application pool stops, then all heal.  Per phase: the signed-in
# failures users saw, the servers out, the farm-wide fault transitions,
# the load share.  The module's targets (issue on judging real traffic)
# are asserted; plain nginx's figures are printed beside them, and the
# module is never worse.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use Time::HiRes qw(sleep);

my $farm = farm(tls => 1);
my @names = qw(EXCH1 EXCH2 EXCH3);

my $httpsys = "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY>"
            . "<h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service "
            . "is unavailable.</p></BODY></HTML>\r\n";

# what every server answers whatever its state: stale links, and the users
# of a mailbox database that is down (through every front end)
sub noise {
    my ($s) = @_;
    my $b = $farm->server($s);
    $b->prepend({ name => 'stale', path => '^/owa/old/', status => 302,
        headers => { Location => '/owa/auth/errorFE.aspx?httpCode=404' },
        body => '' });
    $b->prepend({ name => "dbdown-$_", user => $_, path => '^/owa/$',
                  capture => 'errorfe-redirect', beserver => 'MBX7' })
        for qw(db1 db2 db3);
}

sub preset {
    my ($s, $p) = @_;
    $farm->server($s)->preset($p eq 'app-pool-stopped' ? 'healthy' : $p);
    if ($p eq 'app-pool-stopped') {
        $farm->server($s)->prepend({ name => 'httpsys', path => '^/(owa|ecp)',
            raw => "HTTP/1.1 503 Service Unavailable\r\n"
                 . "Content-Type: text/html; charset=us-ascii\r\n"
                 . "Server: Microsoft-HTTPAPI/2.0\r\nConnection: close\r\n"
                 . 'Content-Length: ' . length($httpsys) . "\r\n\r\n$httpsys" });
    }
    noise($s);
}

my $module = EH::Front::nginx($farm,
    upstream => 'exchange_health_eject time=2s;',
    server => 'location = /status { exchange_health_status; }');
my $plain = EH::Nginx->new(http => $farm->upstream_block('exchange',
        all => 'max_fails=1 fail_timeout=10s') . <<"CONF");
server {
    listen 127.0.0.1:{{PORT}};
    location / {
        proxy_pass https://exchange;
        proxy_ssl_verify off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream error timeout http_500 http_502 http_503;
    }
}
CONF
$_->start for $module, $plain;

# One phase of traffic through a front end: what the users saw
sub traffic {
    my ($ng) = @_;
    $farm->clear_logs;
    my $mark = $ng->mark;
    my $failed = 0;
    for my $round (1 .. 3) {
        for my $u (1 .. 20) {
            my $r = $ng->request(GET => '/owa/', signed_in => "user$u");
            $failed++ unless ($r->{status} // 0) == 200;
        }
        $ng->request(GET => '/owa/auth/logon.aspx?replaceCurrent=1') for 1 .. 3;
        $ng->request(GET => '/owa/old/inbox.aspx', signed_in => "user$_") for 1 .. 2;
        $ng->request(GET => '/owa/', signed_in => "db$_") for 1 .. 3;
    }
    my %load = map { my $s = $_; $s => scalar(grep { ($_->{user} // '') =~ /^user\d+$/ }
                     $farm->server($s)->requests(path => '^/owa/$')) } @names;
    my $transitions = () = $ng->error_log_since($mark)
        =~ /farm-wide fault for \S+(?:, not ejecting| cleared)/g;
    return { failed => $failed, transitions => $transitions, load => \%load };
}

sub forged {
    my ($ng) = @_;
    for my $i (1 .. 9) {
        $ng->request($_ => '/owa/auth/errorFE.aspx?httpCode=500&be=EXCH2',
                     cookies => { cadata => "forged$i" }) for qw(GET POST);
    }
}

sub out {
    my ($j) = EH::Front::status_json($module);
    return join ' ', sort map { $_->{name} } grep {
        ($_->{protocols}{owa}{state} // '') =~ /ejected|trial/ }
        @{ $j->{upstreams}[0]{servers} };
}

# the users' requests each server took, of those of healthy mailboxes
sub even {
    my ($load, @healthy) = @_;
    my $total = 0;
    $total += $load->{$_} for @healthy;
    return 0 unless $total;
    for (@healthy) {
        return 0 if abs($load->{$_} / $total - 1 / @healthy) > 0.10;
    }
    return 1;
}

preset($_, 'healthy') for @names;

my @phases = (
    [ quiet => sub {} ],
    [ 'forged cookies' => sub {} ],
    [ 'Auth certificate lost on EXCH2' => sub { preset('EXCH2', 'seed') } ],
    [ '+ EXCH3 app pool stopped' => sub { preset('EXCH3', 'app-pool-stopped') } ],
    [ healed => sub { preset($_, 'healthy') for @names; sleep 4.5 } ],
);

diag sprintf '%-32s %-22s %-22s', 'phase', 'module', 'plain nginx';
for my $p (@phases) {
    my ($name, $set) = @$p;
    $set->();
    my (%m, %n);
    if ($name ne 'quiet') { forged($module); forged($plain) }
    my $m = traffic($module);
    my $n = traffic($plain);
    my $out = out();
    diag sprintf '%-32s %-22s %-22s', $name,
        "failed $m->{failed}/60, out [$out]", "failed $n->{failed}/60";

    cmp_ok $m->{failed}, '<=', $n->{failed}, "$name: never worse than plain nginx";
    is $m->{failed}, 0, "$name: no signed-in user saw a failure";
    is $m->{transitions}, 0, "$name: no farm-wide fault raised or cleared";

    if ($name eq 'quiet' || $name eq 'forged cookies') {
        is $out, '', "$name: no server out";
        ok even($m->{load}, @names), "$name: load within 10 % of even"
            or diag explain $m->{load};
    }
    elsif ($name =~ /^Auth/) {
        like $out, qr/EXCH2/, "$name: EXCH2 out";
        unlike $out, qr/EXCH[13]/, "$name: no other";
        ok even($m->{load}, qw(EXCH1 EXCH3)), "$name: load even over the others"
            or diag explain $m->{load};
    }
    elsif ($name =~ /app pool/) {
        like $out, qr/EXCH3/, "$name: EXCH3 out too";
    }
    else {
        ok wait_until(sub { traffic($module); out() eq '' }, timeout => 10),
            "$name: every server back after its trial";
    }
}

$module->stop;
$plain->stop(no_check => 1);
done_testing;
