#!/usr/bin/perl

# The status page's history: when the incident began (not the last change
# of state: a failed trial is a change, not a new fault), and the
# timeline of each server and protocol, a minute a record, in HTML (SVG)
# and JSON.  EXCH2 fails, is ejected, fails its trial, then heals.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Util ();
use JSON::PP ();
use Time::Local ();

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');

my $ng = EH::Front::nginx($farm,
    upstream => 'exchange_health_eject time=1s;',
    server => 'location = /status { exchange_health_status; }');
$ng->start;

# EXCH2's OWA in JSON
sub owa {
    my ($j) = EH::Front::status_json($ng);
    my ($s) = grep { ($_->{name} // '') eq 'EXCH2' } @{ $j->{upstreams}[0]{servers} };
    return $s ? $s->{protocols}{owa} : undef;
}

# an ISO 8601 time, with Z or an offset, as a Unix time
sub epoch {
    my ($t) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $z, $zh, $zm) = ($t // '')
        =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:Z|([+-])(\d\d):(\d\d))$/
        or return undef;
    my $e = Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y);
    $e -= ($z eq '-' ? -1 : 1) * ($zh * 3600 + $zm * 60) if defined $z;
    return $e;
}

# EXCH2's owa block of the HTML page
sub html_owa {
    my $h = $ng->request(GET => '/status')->{body};
    my ($card) = $h =~ m{(<h3>EXCH2 .*?</article>)}s;
    my ($owa) = ($card // '') =~ m{(<b>owa</b>.*?)(?:<div class="proto">|</article>)}s;
    return $owa // '';
}

my $before = time;
$ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 12;

my $o = owa();
is $o->{state}, 'ejected', 'EXCH2 is ejected for OWA';
my $start = epoch($o->{incident_since});
ok defined $start, "the incident's start, ISO 8601: $o->{incident_since}";
cmp_ok $start, '>=', $before, '... not before the first failure';
cmp_ok $start, '<=', epoch($o->{since}), '... nor after its ejection';

my $tl = $o->{timeline};
ok $tl && epoch($tl->{start}), 'a timeline, with its start';
cmp_ok $tl->{minutes}, '>=', 30, '... of at least half an hour';
my $sum = 0;
$sum += $_->{minutes} for @{ $tl->{runs} };
is $sum, $tl->{minutes}, '... its runs cover every minute';
is $tl->{runs}[0]{state}, 'unknown', '... before the zone had the upstream: unknown';
is $tl->{runs}[-1]{state}, 'ejected', '... ending ejected';
my ($f, $r) = (0, 0);
for (@{ $tl->{counts} }) { $f += $_->{failures}; $r += $_->{rescued} }
is $f, $o->{failures}, "... its minutes count every failure ($f)";
is $r, $o->{rescued}, "... and every request rescued ($r)";

# the trial fails: ejected again, a change of state, the same incident;
# the users come back (only a session Exchange signed in may be a trial)
my $i = 0;
ok wait_until(sub {
        $ng->request(GET => '/owa/', signed_in => 'user' . ($i++ % 12 + 1));
        (owa()->{ejections} // 0) >= 2 }, timeout => 20),
    'EXCH2 failed its trial and is ejected again';
$o = owa();
cmp_ok epoch($o->{since}), '>', $start, 'its last change of state is later';
is epoch($o->{incident_since}), $start, 'the incident still began when the fault did';

my $html = html_owa();
my ($shown) = $html =~ m{fault since <time datetime="([^"]+)">};
is epoch($shown), $start, 'HTML: "fault since" the incident\'s start'
    or diag $html;
like $html, qr{<svg class="tl" viewBox="0 0 \d+ 26"[^>]*>.*<rect class="s9" }s,
    'HTML: the timeline draws the ejection';
like $html, qr{<path class="fl" d="M\d+ \d+v-\d+h1v\d+z}, '... and the failures under it';

# healed: the trial passes, the incident is over
$farm->heal;
ok wait_until(sub {
        $ng->request(GET => '/owa/', signed_in => 'user' . ($i++ % 12 + 1));
        (owa()->{state} // '') eq 'healthy' }, timeout => 20),
    'EXCH2 healed: re-admitted after a good trial';
$o = owa();
is $o->{incident_since}, undef, 'no incident any more';
$html = html_owa();
unlike $html, qr{fault since}, 'HTML: no "fault since"';
like $html, qr{<span class="since">since <time }, 'HTML: since its last change';
ok grep({ $_->{state} eq 'ejected' } @{ $o->{timeline}{runs} }),
    'the timeline keeps the ejection';

$ng->stop;

# a server Exchange has not named yet: the configuration's name, the
# address once
{
    my $port = EH::Util::free_port();
    my $ng = EH::Front::nginx($farm, upstream => "server localhost:$port down;",
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    my $h = $ng->request(GET => '/status')->{body};
    like $h, qr{<h3>localhost <span class="addr">127\.0\.0\.1:$port</span></h3>},
        'named as configured, its address beside it';
    my ($j) = EH::Front::status_json($ng);
    my ($s) = grep { $_->{address} eq "127.0.0.1:$port" } @{ $j->{upstreams}[0]{servers} };
    is $s->{server}, "localhost:$port", 'JSON: the configured name as it was';
    $ng->stop;
}

# a zone with no room left: the page says timelines are missing
{
    my $small = farm(tls => 1, n => 8);
    $small->preset('seed');
    my $ng = EH::Front::nginx($small, zone => '32k',
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    my ($j) = EH::Front::status_json($ng);
    is $j->{upstreams}[0]{timeline_full}, JSON::PP::false, 'a full zone, no timeline asked for yet';
    $ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 8;
    ($j) = EH::Front::status_json($ng);
    is $j->{upstreams}[0]{timeline_full}, JSON::PP::true, 'JSON: a timeline found no room';
    like $ng->request(GET => '/status')->{body},
        qr{Some timelines are missing: the zone has no room for them},
        'HTML: says so';
    $ng->stop;
}

done_testing;
