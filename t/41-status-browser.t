#!/usr/bin/perl

# The status page as a browser renders it: headless Chromium loads the
# page of a farm with one failing server, one that never answered (its
# probe cannot connect) and one whose Exchange name is 64 characters
# without a space, on a phone (390 px) and a laptop (1280 px).  What the
# helpdesk reads (who is out, what users see, since when, why the probe
# fails, the timeline) is there, and no element is wider than the page:
# measured in the browser, element by element.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Status;
use EH::Util ();

plan skip_all => 'chromium not installed (tools/install-deps test installs it)'
    unless EH::Status::chromium_path();

my $long = 'W' x 64;
my $farm = farm(tls => 1, each => { EXCH3 => { vars => { FESERVER => $long } } });
$farm->server('EXCH2')->preset('seed');

# a server that never answers: nothing listens there
my $dead = '127.0.0.1:' . EH::Util::free_port();

my $dir = run_dir();
spew("$dir/measure.html", EH::Status::measure_page('/status'));

my $ng = EH::Front::nginx($farm,
    upstream => "server $dead;\n"
              . "exchange_health_probe interval=1s timeout=1s "
              . "protocols=owa fails=2;",
    server => "location = /status { exchange_health_status; }\n"
            . "location = /measure.html { alias $dir/measure.html; }");
$ng->start;

$ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;
$ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 12;
$ng->request(GET => '/ecp/', signed_in => "user$_") for 1 .. 12;

# the dead server's probe has failed twice: drained, with its reason
ok wait_until(sub {
        my ($j) = EH::Front::status_json($ng);
        my ($s) = grep { $_->{address} eq $dead } @{ $j->{upstreams}[0]{servers} };
        my $p = $s && $s->{protocols}{owa}{probe};
        $p && ($p->{failed_in_a_row} // 0) >= 2 && $p->{why} } , timeout => 10),
    'the dead server\'s probe failed twice, with a reason';

my $url = 'http://127.0.0.1:' . $ng->port . '/status';
my $dom = EH::Status::chromium(url => $url, dump_dom => 1);

ok defined $dom && length $dom, 'Chromium rendered the page';
like $dom, qr{<title>Exchange health: 2 servers failing</title>}, 'title';
like $dom, qr{<p id="summary">2 of 4 servers failing}, 'the summary says it';

my @cards = $dom =~ m{<article class="card ?([a-z]*)">\s*<h3>([^ <]+)}g;
is scalar(@cards) / 2, 4, 'four servers shown';
is_deeply [ sort grep { $_ ne $long } @cards[map { 2 * $_ + 1 } 0 .. 1] ],
    [ sort grep { $_ ne $long } 'EXCH2', $dead ],
    'the failing servers first: EXCH2 and the dead one';

# a server Exchange never named: its address, once
my ($dead_card) = $dom =~ m{(<article[^>]*>\s*<h3>\Q$dead\E.*?</article>)}s;
ok $dead_card, 'the dead server has a card, named by its address';
is scalar(() = ($dead_card // '') =~ /\Q$dead\E/g), 1, '... shown once';
like $dead_card, qr{probe failed (?:&times;|\xc3\x97)\d+ \d\d:\d\d \(\d+ s\): <i class="why-probe">cannot connect</i>},
    '... with the probe\'s reason';

like $dom, qr{EXCH2.*?<b>owa</b><span><span class="badge bad">ejected</span> until \d\d:\d\d}s,
    'EXCH2 is ejected for OWA';
like $dom, qr{EXCH2.*?<b>ecp</b><span><span class="badge bad">ejected</span>}s,
    '... and for ECP';
like $dom, qr{EXCH2.*?fault since <time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC(?:[+-]\d\d:\d\d)?</time>}s,
    'since when the fault lasts, with its date and time zone';
like $dom, qr{What to check:</b> Signed-in OWA and ECP fail}, 'the hint shows';

my ($users) = $dom =~ m{<p class="users">(.*?)</p>}s;
like $users, qr{^Users are served by (?:EXCH1 and \Q$long\E|\Q$long\E and EXCH1); }, 'what users see: who serves them';
like $users, qr{EXCH2 is out for owa, ecp}, '... who is out and for what';
like $users, qr{\b(\d+) requests? rescued in the last hour$}, '... and the rescued requests';
my ($rescued) = $users =~ /(\d+) requests? rescued/;
cmp_ok $rescued, '>=', 3, "... $rescued of them";

my ($exch2) = $dom =~ m{(<article[^>]*>\s*<h3>EXCH2 .*?</article>)}s;
like $exch2, qr{<b>owa</b>.*?<svg class="tl"[^>]*>(?:<rect class="s[12]"[^>]*><title>[^<]*</title></rect>)*<rect class="s9" x="\d+" width="\d+"[^>]*><title>ejected \d\d:\d\d(?:&ndash;|\xe2\x80\x93)\d\d:\d\d</title></rect><path class="fl" d="M\d+ }s,
    'EXCH2\'s timeline: ejected, ending now, failures counted';
like $dom, qr{<ul class="legend" id="legend">.*<b>on trial</b>: .*<b>farm-wide fault</b>: }s,
    'the legend names the timeline\'s states';

for my $width (390, 1280) {
    my $m = EH::Status::chromium(url => 'http://127.0.0.1:' . $ng->port
                                        . "/measure.html?$width",
                                 dump_dom => 1, size => "$width,900");
    my ($result) = ($m // '') =~ m{<pre id="result">(.*?)</pre>}s;
    like $result, qr/^width=$width /, "measured at $width px";
    like $result, qr/ elements=(\d{3,}) /, '... every element of the page';
    like $result, qr/ page=$width /, '... the page is no wider than the screen';
    like $result, qr/ overflow=0$/, '... and no element is wider than its room'
        or diag $result;
}

for my $size ('1280,900', '390,844') {
    my $png = "$dir/status-$size.png";
    EH::Status::chromium(url => $url, screenshot => $png, size => $size);
    my $head = -e $png ? do { open my $f, '<:raw', $png; local $/ = \8; <$f> }
                       : '';
    is $head, "\x89PNG\r\n\x1a\n", "a screenshot at $size";
    cmp_ok -s $png, '>', 10_000, '... with something drawn on it';
}

$ng->stop;
done_testing;
