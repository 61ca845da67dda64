#!/usr/bin/perl

# The deployment documentation says what is so:
# 1. the Debian examples (docs/debian/: a conf.d snippet and a site) hold
#    the statements of example.conf's http block, and the site logs at
#    warn; the package ships them; docs/debian.md's commands name them
#    and its sed line does change Debian's nginx.conf;
# 2. docs/status-page.md lists every state the module reports, with the
#    value Prometheus gives it;
# 3. the admin and status curl lines of the docs use a name example.conf
#    serves (the status and admin locations refuse any other Host);
# 4. docs/replay.md's --show-config sample is the tool's output today.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Util ();

my $repo = EH::Util::repo_root();
my $docs = "$repo/docs";
my $example = slurp("$docs/example.conf");

# nginx statements of a text, comments and layout aside: top-level ones
# as strings, blocks included
sub statements {
    my ($text) = @_;
    $text =~ s/#[^\n]*//g;
    $text =~ s/\s+/ /g;
    my @st;
    my ($cur, $depth) = ('', 0);
    for my $c (split //, $text) {
        $cur .= $c;
        $depth++ if $c eq '{';
        $depth-- if $c eq '}';
        if ($depth == 0 && ($c eq ';' || $c eq '}')) {
            $cur =~ s/\A\s+|\s+\z//g;
            push @st, $cur if length $cur;
            $cur = '';
        }
    }
    return @st;
}

# ------------------------------------------------------------------ 1.
my $confd = slurp("$docs/debian/conf.d/exchange-health.conf");
my $site = slurp("$docs/debian/sites-available/exchange");
my ($http) = $example =~ /^http \{\n(.*)^\}/ms;
my $no_errlog = sub { map { s/ ?error_log [^;{}]*;//gr } @_ };
is_deeply [ sort $no_errlog->(statements($confd), statements($site)) ],
          [ sort $no_errlog->(statements($http)) ],
    'conf.d/exchange-health.conf and sites-available/exchange: the http block of example.conf';
ok !grep({ /^(?:server|location)\b/ } statements($confd)),
    'conf.d: http-level statements only, no server block';
is scalar(grep { /^server \{/ } statements($site)), 2, 'the site: the two server blocks';
my ($tls) = grep { /listen 443 ssl;/ } statements($site);
like $tls, qr/^server \{ listen 443 ssl; server_name [^;]+; error_log \/var\/log\/nginx\/error\.log warn;/,
    'the site: its TLS server logs at warn, where the module logs';
like $example, qr/^error_log \/var\/log\/nginx\/error\.log warn;$/m,
    'example.conf: the error log at warn';

my $examples = slurp("$repo/debian/libnginx-mod-http-exchange-health.examples");
like $examples, qr{^docs/debian/conf\.d$}m, 'the package ships the conf.d example';
like $examples, qr{^docs/debian/sites-available$}m, '... and the site';
like slurp("$repo/debian/libnginx-mod-http-exchange-health.docs"),
    qr{^docs/debian\.md$}m, '... and docs/debian.md';

my $guide = slurp("$docs/debian.md");
for my $f ('conf.d/exchange-health.conf', 'sites-available/exchange') {
    like $guide, qr{^cp \$ex/\Q$f\E /etc/nginx/}m, "debian.md: copies $f";
}
like $guide, qr{^ln -s \.\./sites-available/exchange /etc/nginx/sites-enabled/exchange$}m,
    'debian.md: enables the site';
like $guide, qr{^apt install \./libnginx-mod-http-exchange-health_\*_amd64\.deb$}m,
    'debian.md: starts from apt install of the built package';

SKIP: {
    my $debian = '/etc/nginx/nginx.conf';
    skip "no Debian $debian here", 2
        unless -f $debian && slurp($debian) =~ /modules-enabled/;
    my ($sed) = $guide =~ /^(sed -i '[^']+' )\/etc\/nginx\/nginx\.conf$/m;
    ok $sed, 'debian.md: the sed line for nginx.conf' or last;
    my $copy = run_dir() . '/nginx.conf';
    spew($copy, slurp($debian) =~ s/^error_log [^;]+;$/error_log \/var\/log\/nginx\/error.log;/mr);
    system("$sed $copy") == 0 or fail('sed ran');
    like slurp($copy), qr{^error_log /var/log/nginx/error\.log warn;$}m,
        "debian.md's sed line sets warn in Debian's nginx.conf";
}

# ------------------------------------------------------------------ 2.
{
    my $farm = farm();
    my $ng = EH::Front::nginx($farm,
        server => 'location = /status { exchange_health_status; }');
    $ng->start;
    my $p = $ng->request(GET => '/status?format=prometheus')->{body};
    $ng->stop;
    my ($help) = $p =~ /^# HELP exchange_health_server_state (.*)$/m;
    my %state = ($help // '') =~ /(\d+) ([a-z][a-z -]*?)(?=, \d|\z)/g;
    cmp_ok scalar(keys %state), '>=', 11,
        'the states, from the module\'s Prometheus help: ' . scalar(keys %state);
    my $doc = slurp("$docs/status-page.md");
    my %doc = $doc =~ /^\s*\| (\d+) \| `([^`]+)` \|/mg;
    is_deeply \%doc, \%state,
        'status-page.md: a row for each state, with its Prometheus value';
    like $doc, qr/exchange_health_server_state_since_timestamp_seconds/,
        'status-page.md: the time of the last change, by its name';
    like $doc, qr/exchange_health_server_state_since_seconds/,
        '... and the old name, for whoever scraped it';
}

# ------------------------------------------------------------------ 3.
{
    my ($tls_server) = grep { /listen 443 ssl;/ } statements($http);
    my ($names) = $tls_server =~ /server_name ([^;]+);/;
    my %served = map { $_ => 1 } split ' ', $names;
    ok $served{'mail.contoso.com'}, "example.conf serves $names";
    my @curls;
    for my $f (qw(operations.md directives.md debian.md status-page.md)) {
        my $t = slurp("$docs/$f");
        push @curls, map { [$f, $_] }
            $t =~ m{^\s*curl .*?'?https://([^/:'\s]+)(?::\d+)?/exchange-(?:admin|status)}mg;
    }
    cmp_ok scalar(@curls), '>=', 5, 'curl lines to the status page and the admin API: '
        . scalar(@curls);
    my @wrong = map { "$_->[0]: $_->[1]" } grep { !$served{ $_->[1] } } @curls;
    is "@wrong", '', 'each names a host example.conf serves';
}

# ------------------------------------------------------------------ 4.
{
    my $doc = slurp("$docs/replay.md");
    my ($sample) = $doc =~ /^\$ tools\/exchange-health-replay --config docs\/example\.conf --show-config\n(.*?)^```/ms;
    ok defined $sample, 'replay.md: the --show-config sample';
    my $out = `cd $repo && $^X tools/exchange-health-replay --config docs/example.conf --show-config 2>/dev/null`;
    is $?, 0, 'exchange-health-replay --show-config runs';
    $out .= "\n" unless $out =~ /\n\z/;
    is $sample, $out, 'replay.md: the sample is its output today';
    like $out, qr{location = /exchange-status .*location = /exchange-admin}s,
        '... the status and admin locations included';
}

done_testing;
