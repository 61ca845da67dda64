#!/usr/bin/perl

# The Prometheus alert rules shipped in contrib/prometheus: promtool
# accepts them, their unit tests (series from two load balancers) pass,
# and every metric they use is one the module exports.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Status;

my $dir = EH::Util::repo_root() . '/contrib/prometheus';
my $rules = "$dir/exchange-health.rules.yml";

plan skip_all => 'promtool not installed (tools/install-deps test installs it)'
    unless EH::Status::promtool();

my $out = `promtool check rules $rules 2>&1`;
is $?, 0, 'promtool check rules: clean' or diag $out;
like $out, qr/SUCCESS: 5 rules found/, '... five rules';

$out = `cd $dir && promtool test rules exchange-health.rules.test.yml 2>&1`;
is $?, 0, 'promtool test rules: two nodes, one page per server; drained, farm-wide, node down'
    or diag $out;

# the metrics the rules use, against the ones the module exports
my $exprs = join "\n", slurp($rules) =~ /^\s+expr:(.*?)^\s+for:/msg;
my %used = map { $_ => 1 } $exprs =~ /\b(exchange_health_\w+)/g;
my $farm = farm(tls => 1);
my $ng = EH::Front::nginx($farm,
    server => 'location = /status { exchange_health_status; }');
$ng->start;
my $page = $ng->request(GET => '/status?format=prometheus')->{body};
$ng->stop;
my %exported = map { $_ => 1 } $page =~ /^# TYPE (exchange_health_\w+) /mg;
is_deeply [ grep { !$exported{$_} } sort keys %used ], [],
    'every metric the rules use is exported: ' . join(' ', sort keys %used);

done_testing;
