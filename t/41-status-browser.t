#!/usr/bin/perl

# The status page as a browser renders it: headless Chromium loads the
# page of a farm with one failing server, on a laptop and a phone.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Status;

plan skip_all => 'chromium not installed (tools/install-deps test installs it)'
    unless EH::Status::chromium_path();

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');

my $ng = EH::Front::nginx($farm,
    server => 'location = /status { exchange_health_status; }');
$ng->start;

$ng->request(GET => '/owa/healthcheck.htm') for 1 .. 3;
$ng->request(GET => '/owa/', signed_in => "user$_") for 1 .. 12;
$ng->request(GET => '/ecp/', signed_in => "user$_") for 1 .. 12;

my $url = 'http://127.0.0.1:' . $ng->port . '/status';
my $dom = EH::Status::chromium(url => $url, dump_dom => 1);

ok defined $dom && length $dom, 'Chromium rendered the page';
like $dom, qr{<title>Exchange health: 1 server failing</title>}, 'title';
like $dom, qr{<p id="summary">1 of 3 servers failing}, 'the summary says it';

my @cards = $dom =~ m{<article class="card ?([a-z]*)">\s*<h3>([^ <]+)}g;
my %cards = reverse @cards;
is $cards[1], 'EXCH2', 'the failing server is the first card';
is $cards[0], 'bad', '... marked bad';
is scalar(@cards) / 2, 3, 'three servers shown';
is_deeply [ @cards[2, 4] ], [ '', '' ], 'the others are not marked';

like $dom, qr{EXCH2.*?<td>owa</td><td><span class="badge bad">ejected</span>}s,
    'EXCH2 is ejected for OWA';
like $dom, qr{EXCH2.*?<td>ecp</td><td><span class="badge bad">ejected</span>}s,
    '... and for ECP';
like $dom, qr{What to check:</b> Signed-in OWA and ECP fail}, 'the hint shows';

my $dir = run_dir();
for my $size ('1200,900', '390,844') {
    my $png = "$dir/status-$size.png";
    EH::Status::chromium(url => $url, screenshot => $png, size => $size);
    my $head = -e $png ? do { open my $f, '<:raw', $png; local $/ = \8; <$f> }
                       : '';
    is $head, "\x89PNG\r\n\x1a\n", "a screenshot at $size";
    cmp_ok -s $png, '>', 10_000, '... with something drawn on it';
}

$ng->stop;
done_testing;
