#!/usr/bin/perl

# OWA's explicit logon puts a mailbox address in the path
# (/owa/alice@contoso.com/).  What the module records of a failure (the
# status page in its three formats, the state file, its log lines) keeps
# the protocol and the path, never the address.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);
$farm->server('EXCH2')->preset('seed');
my $state = run_dir() . '/exchange.state';

my $ng = EH::Front::nginx($farm, zone => "1m state=$state",
    upstream => 'exchange_health_eject time=10m;',
    location => 'exchange_health_retry off;',
    server => 'location = /status { exchange_health_status; }');
$ng->start;

$ng->request(GET => '/owa/alice@contoso.com/', signed_in => "u$_") for 1 .. 6;
$ng->request(GET => '/owa/bob%40contoso.com/service.svc', signed_in => "v$_")
    for 1 .. 6;

my $json = $ng->request(GET => '/status?format=json')->{body};
my $html = $ng->request(GET => '/status')->{body};
my $prom = $ng->request(GET => '/status?format=prometheus')->{body};
like $json, qr{"uri":"/owa/\(mailbox\)/}, 'JSON: the path, the address masked';
my @ej = EH::Front::changes($ng, 'ejected');
like $ej[0]{line}, qr{on GET /owa/\(mailbox\)/}, 'the ejection line: masked'
    if @ej;
ok scalar(@ej), 'EXCH2 ejected';
$ng->stop;

my $text = slurp($state);
like $text, qr{uri=/owa/\(mailbox\)/}, 'the state file: masked';

# the module's words, not nginx's request line it appends to every line
my $module_lines = join "\n", map { s/, client: .*//r }
                   grep { /exchange_health: / } split /\n/, $ng->error_log;
for my $where ([JSON => $json], [HTML => $html], [Prometheus => $prom],
               ['state file' => $text], ['log lines' => $module_lines]) {
    unlike $where->[1], qr/alice|bob|contoso\.com\//i,
        "$where->[0]: no mailbox address";
}

done_testing;
