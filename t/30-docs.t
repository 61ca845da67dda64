#!/usr/bin/perl

# The documentation works as written.
#
# 1. docs/example.conf, with only what cannot exist here replaced (the
#    module path, certificates, back-end addresses, listen ports, log
#    paths), passes "nginx -t" as a whole file, then runs in front of a
#    3-server HTTPS farm whose certificate is signed by a test CA that
#    proxy_ssl_verify checks: a signed-in OWA request works, and the seed
#    failure on EXCH2 gets EXCH2 ejected for OWA.
# 2. Every directive of docs/directives.md ("## exchange_health...") is
#    accepted in each context the doc names and refused in the others;
#    the module has no directive the doc does not describe; the
#    documented defaults, built-in rules, variables and log_format are
#    accepted as written.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Util ();

my $repo = EH::Util::repo_root();
my $docs = "$repo/docs";
my $nginx_bin = $ENV{EH_NGINX} // '/usr/sbin/nginx';

# ====================================================================
# 1. docs/example.conf

# The certificate the front end and every Exchange server present, from
# a CA that proxy_ssl_trusted_certificate names.
my $ca = cert(cn => 'Contoso Test Root CA', is_ca => 1);
my $mail = cert(cn => 'mail.contoso.com', ca => $ca,
                san => ['mail.contoso.com', 'autodiscover.contoso.com', 'IP:127.0.0.1']);

my $farm = farm(tls => 1, backend => { cert => $mail });
my @exch = map { $farm->server("EXCH$_") } 1 .. 3;

my $original = slurp("$docs/example.conf");

# The replacements, line by line; every changed line must match one of
# these patterns (checked below), everything else stays as written.
my @replaced = (
    qr/^load_module /,
    qr/^\s*server 10\.0\.0\.\d+:443\b/,
    qr/^\s*listen /,
    qr/^\s*ssl_certificate(?:_key)? /,
    qr/^\s*proxy_ssl_trusted_certificate /,
    qr/^\s*access_log /,
    qr/^\s*error_log /,
    qr/^\s*state=/,
);

sub adapt {
    my ($text, $ports) = @_;
    return EH::Front::example_conf(text => $text, ports => $ports,
        servers => [ map { $_->addr } @exch ], cert => $mail, ca => $ca);
}

# the module's directives and variables of a configuration text, in order
sub module_lines {
    my ($text) = @_;
    my @l;
    my $stmt = '';
    for my $line (split /\n/, $text) {
        $line =~ s/#.*//;
        next unless $line =~ /\S/;
        $stmt .= ' ' . $line;
        next unless $line =~ /[;{}]\s*$/;
        $stmt =~ s/\s+/ /g;
        push @l, $stmt if $stmt =~ /\bexchange_health/;
        $stmt = '';
    }
    return @l;
}

{
    my $dir = run_dir() . '/example';
    mkdir $dir;
    mkdir "$dir/logs";
    # the example's workers run as www-data and write the state file here
    chown scalar(getpwnam('www-data')), -1, $dir if $> == 0 && getpwnam('www-data');
    my $ports = { http => EH::Util::free_port(), https => EH::Util::free_port(),
                  prefix => $dir };
    my $adapted = adapt($original, $ports);
    spew("$dir/example.conf", $adapted);

    my @o = split /\n/, $original, -1;
    my @a = split /\n/, $adapted, -1;
    is scalar(@a), scalar(@o), 'example.conf: adapted line by line';
    my @changed = grep { $o[$_] ne $a[$_] } 0 .. $#o;
    my @unexpected = grep { my $l = $o[$_]; !grep { $l =~ $_ } @replaced } @changed;
    is_deeply [ map { $o[$_] } @unexpected ], [],
        'example.conf: only module path, addresses, ports, certificates, log path replaced';
    is scalar(@changed), 12, 'example.conf: the 12 lines that cannot exist here were replaced'
        or diag join "\n", map { "$o[$_]\n  => $a[$_]" } @changed;
    is_deeply [ map { s/state=\S+;/state=FILE;/r } module_lines($adapted) ],
              [ map { s/state=\S+;/state=FILE;/r } module_lines($original) ],
        'example.conf: every exchange_health directive and variable kept as written';
    is scalar(module_lines($original)), 9, 'example.conf: its 9 statements using the module found (zone, balancer, eject, probe, ntlm, log_format, status, admin, retry)';

    # nginx -t on the whole adapted file: its main context, events and all
    my $out = `$nginx_bin -p $dir/ -c $dir/example.conf -e $dir/logs/error.log -t 2>&1`;
    is $? >> 8, 0, 'example.conf: nginx -t accepts it' or diag $out;
    like $out, qr/test is successful/, 'example.conf: nginx -t says so';
    unlike $out, qr/\[(?:emerg|alert|crit|error)\]/, 'example.conf: without errors'
        or diag $out;
}

# Run it.  The harness writes the main context and events itself: the
# example's "worker_processes auto" goes through its option, and its
# "worker_connections 4096" becomes the harness's 1024 (4096 may exceed
# the open file limit here); the http block is the example's, adapted.
{
    my ($http, $main, $events) = eval {
        EH::Front::example_http(text => $original, cert => $mail, ca => $ca,
                                servers => [ map { $_->addr } @exch ])
    } or BAIL_OUT($@);
    like $main, qr/^worker_processes auto;$/m, 'example.conf: worker_processes auto';
    like $events, qr/^\s*worker_connections 4096;$/m, 'example.conf: events as expected';
    is join('', grep { !/^\s*(?:#.*)?$/ && !/^(?:load_module|user|worker_processes|error_log) / }
                split /^/, $main), '',
        'example.conf: nothing else in the main context';
    like $main, qr/^error_log \S+ warn;$/m,
        'example.conf: the error log at warn, where the module logs';
    my $ng = EH::Nginx->new(http => $http, tls => 1, host => 'mail.contoso.com',
                            worker_processes => 'auto');
    $ng->start;

    # plain HTTP is sent to HTTPS
    my $r = $ng->request(GET => '/owa/', port => 'HTTP', tls => 0);
    is $r->{status}, 301, 'example: port 80 redirects';
    is $r->header('Location'), 'https://mail.contoso.com/owa/', 'example: to https://$host$request_uri';

    # one signed-in OWA request, through TLS verified against the CA
    $r = $ng->request(GET => '/owa/', signed_in => 'alice');
    is $r->{status}, 200, 'example: a signed-in OWA request works';
    like $r->{body}, qr/<html/i, 'example: ... with the OWA page';
    is $r->{peer_cert}{cn}, 'mail.contoso.com', 'example: the front end presents mail.contoso.com';
    my ($seen) = $farm->requests(path => '^/owa/$');
    is $seen->{headers}{host}, 'mail.contoso.com', 'example: proxy_set_header Host $host';
    is $seen->{headers}{'x-forwarded-for'}, '127.0.0.1', 'example: X-Forwarded-For';
    ok $seen->{signed_in}, 'example: the cadata cookie reaches Exchange';

    # the seed failure on EXCH2: the users never see it, EXCH2 is ejected
    $farm->clear_logs;
    $exch[1]->preset('seed');
    my (@st, @ej);
    for my $i (1 .. 30) {
        push @st, $ng->request(GET => '/owa/', signed_in => "user$i")->{status};
        last if @ej = EH::Front::changes($ng, 'ejected');
    }
    is_deeply \@st, [ (200) x @st ], 'example, seed on EXCH2: every user gets 200 (retried)';
    is scalar(@ej), 1, 'example, seed on EXCH2: one ejection' or diag $ng->error_log;
    is $farm->name_of($ej[0]{addr}), 'EXCH2', 'example, seed on EXCH2: EXCH2 ejected';
    is $ej[0]{protocol}, 'owa', 'example, seed on EXCH2: for owa';
    is $ej[0]{rule}, 'errorfe-redirect', 'example, seed on EXCH2: rule errorfe-redirect';
    like $ej[0]{line}, qr/ for 30s after 3 failures /,
        'example, seed on EXCH2: as exchange_health_eject says (3 failures, 30s)';
    ok $exch[1]->hits(path => '^/owa/', route => 'seed-owa-page') >= 3,
        'example, seed on EXCH2: EXCH2 answered errorFE';
    # the example's own access log (log_format exchange)
    my @log = map {
        /^(\S+) \[[^\]]+\] "([^"]*)" (\d+) \d+ \S+ (.*?) "([^"]*)" (\S+) (\S+) (\S+) (\S+)$/
            ? { request => $2, status => $3, upstream_addr => $4, upstream_status => $5,
                protocol => $6, verdict => $7, server => $8, rule => $9 }
            : ()
    } split /\n/, slurp($ng->prefix . '/logs/exchange.log');
    my @rescued = grep { $_->{upstream_addr} =~ /^\Q${\ $exch[1]->addr }\E, / } @log;
    is scalar(@rescued), 3, 'example, seed on EXCH2: 3 answers of EXCH2 retried elsewhere';
    is join(' ', map { "$_->{status} $_->{upstream_status} $_->{verdict}" } @rescued),
        join(' ', ('200 502, 200 rescued') x 3),
        'example, seed on EXCH2: logged as 200, "502, 200", rescued';
    $farm->clear_logs;
    @st = map { $ng->request(GET => '/owa/', signed_in => "later$_")->{status} } 1 .. 6;
    is_deeply \@st, [ (200) x 6 ], 'example, EXCH2 ejected: users get 200';
    is $exch[1]->hits(path => '^/owa/(?!healthcheck\.htm)'), 0,
        'example, EXCH2 ejected: no OWA request reaches it (its probes still do)';
    $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "ews$_") for 1 .. 6;
    ok $exch[1]->hits(path => '^/EWS/') >= 1, 'example, EXCH2 ejected: EWS still reaches it';

    # the example's access log format
    my @x = grep { m{"GET /owa/ HTTP/1\.1" 200 } } split /\n/, slurp($ng->prefix . '/logs/exchange.log');
    ok scalar(@x) >= 6, 'example: access log written with log_format exchange';
    like $x[-1] // '', qr/ owa healthy EXCH[13] -$/, 'example: ... with protocol, verdict, server, rule';

    $ng->stop;
}

# proxy_ssl_verify is in force: the same example trusting another CA
# cannot reach the farm.
{
    my $other = cert(cn => 'Some Other CA', is_ca => 1);
    my $adapted = adapt($original, { http => '{{PORT_HTTP}}', https => '{{PORT}}',
                                     prefix => '{{PREFIX}}' });
    my ($http) = $adapted =~ /^http\s*\{\n(.*)^\}\s*\z/ms;
    my $n = $http =~ s{(proxy_ssl_trusted_certificate )\Q$ca->{cert}\E;}{$1$other->{cert};}g;
    is $n, 1, 'example, other CA: the proxy_ssl_trusted_certificate line replaced';
    my $ng = EH::Nginx->new(http => $http, tls => 1, host => 'mail.contoso.com');
    $ng->start;
    my $r = $ng->request(GET => '/owa/', signed_in => 'alice');
    is $r->{status}, 502, 'example, other CA: the farm is not trusted (502)';
    ok scalar($ng->grep_error_log(qr/upstream SSL certificate verify error/)),
        'example, other CA: nginx says the certificate did not verify';
    $ng->stop;
}

# ====================================================================
# 2. docs/directives.md

my $doc = slurp("$docs/directives.md");

my %ref;   # name => { syntax, default, context => [..] }
my @order;
while ($doc =~ /^## (exchange_health\w*)\s*\n(.*?)(?=^## |\z)/msg) {
    my ($name, $body) = ($1, $2);
    my ($syntax) = $body =~ /^\s+Syntax:\s+(.*?)\n(?=\s+Default:)/ms;
    my ($default) = $body =~ /^\s+Default:\s+(.*?)\n(?=\s+Context:)/ms;
    my ($context) = $body =~ /^\s+Context:\s+(.*?)\s*$/m;
    ok defined $syntax && defined $default && defined $context,
        "directives.md: $name has Syntax, Default and Context" or next;
    s/\s+/ /g for $syntax, $default;
    push @order, $name;
    $ref{$name} = { syntax => $syntax, default => $default,
                    context => [ split /\s*,\s*/, $context ] };
}
ok scalar(@order) >= 10, 'directives.md: directives found (' . scalar(@order) . ')';

# every directive the module defines is documented, and nothing more
{
    my %src;
    for my $f (glob "$repo/ngx_exchange_health_module/*.c") {
        my $c = slurp($f);
        while ($c =~ /\{\s*ngx_string\("(exchange_health\w*)"\),\s*NGX_\w*CONF/g) {
            $src{$1} = 1;
        }
    }
    is_deeply [ sort keys %src ], [ sort @order ],
        'the module defines exactly the documented directives';
}

# A use of each directive: its documented default when that is one,
# else a sample.  The signed-in probe's credentials file, as the doc says
# it must be: root's, mode 600.
my $cred_sample = run_dir() . '/docs-monitor.cred';
spew($cred_sample, "CONTOSO\\monitor\nsecret\n");
chmod 0600, $cred_sample;

my %sample = (
    exchange_health_zone => 'exchange_health_zone docs 1m;',
    exchange_health      => 'exchange_health zone=exchange;',
    exchange_health_rule => 'exchange_health_rule docs-sample status=500 header=X-FEServer;',
    exchange_health_status => 'exchange_health_status;',
    exchange_health_probe => 'exchange_health_probe interval=10s;',
    exchange_health_probe_uri => 'exchange_health_probe_uri owa /owa/healthcheck.htm;',
    exchange_health_probe_signin =>
        "exchange_health_probe_signin file=$cred_sample;",
);

# what a directive needs before it, in the upstream block
my %requires = (
    exchange_health_probe_uri => 'exchange_health_probe;',
    exchange_health_probe_signin => 'exchange_health_probe;',
);

my %level = (http => 'http', server => 'server', location => 'location',
             upstream => 'upstream');

sub conf_with {
    my ($where, $line, $pre) = @_;
    my %at = map { $_ => '' } keys %level;
    $at{$where} = $line;
    $at{upstream} = join "\n    ", grep { length } $pre // '', $at{upstream};
    # the upstream's own balancer line is the directive when testing it there
    my $balancer = ($where eq 'upstream' && $line =~ /^exchange_health /)
        ? '' : 'exchange_health zone=exchange;';
    return <<"CONF";
exchange_health_zone exchange 1m;
$at{http}
upstream exchange {
    server 127.0.0.1:8001;
    server 127.0.0.1:8002;
    $balancer
    $at{upstream}
}
server {
    listen 127.0.0.1:{{PORT}};
    $at{server}
    location / {
        proxy_pass http://exchange;
        $at{location}
    }
}
CONF
}

for my $name (@order) {
    my $r = $ref{$name};
    my $use = $r->{default} =~ /^\Q$name\E / ? $r->{default} : $sample{$name};
    ok defined $use, "$name: a use to test (documented default or sample)" or next;
    my %ctx = map { $_ => 1 } @{ $r->{context} };
    ok !grep({ !$level{$_} } keys %ctx), "$name: contexts are known ones (@{ $r->{context} })";

    for my $where (sort keys %level) {
        my $ng = nginx(http => conf_with($where, $use, $requires{$name}));
        my ($rc, $out) = $ng->test_config;
        if ($ctx{$where}) {
            is $rc, 0, "$name: accepted in $where ($use)" or diag $out;
        }
        else {
            isnt $rc, 0, "$name: refused in $where";
            like $out, qr/"\Q$name\E" directive is not allowed here/,
                "$name: not allowed in $where";
        }
    }
}

# the documented built-in rules, pasted as written, replace themselves
{
    my ($block) = $doc =~ /The built-in rules are:\s*```nginx\n(.*?)```/s;
    ok defined $block, 'directives.md: the built-in rules block';
    my @rules = grep { /\S/ } split /;\s*\n/, $block // '';
    is scalar(@rules), 14, 'directives.md: fourteen built-in rules';
    for my $where (qw(http server location)) {
        my $ng = nginx(http => conf_with($where, $block // ''));
        my ($rc, $out) = $ng->test_config;
        is $rc, 0, "the documented built-in rules are accepted in $where" or diag $out;
    }
    # and each name is a built-in one: "off" works for it anywhere
    for my $rule (@rules) {
        my ($rname) = $rule =~ /^\s*exchange_health_rule\s+(\S+)/ or next;
        my $ng = nginx(http => conf_with('location', "exchange_health_rule $rname off;"));
        my ($rc, $out) = $ng->test_config;
        is $rc, 0, "built-in rule $rname exists (off is accepted)" or diag $out;
    }
}

# nginx's own tokens of a directive (quotes removed), without the ";"
sub tokens {
    my ($stmt) = @_;
    my @t;
    while ($stmt =~ /\G\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^\s;]+))/gc) {
        push @t, $1 // $2 // $3;
    }
    return @t;
}

# C string literal contents, unescaped
sub c_strings {
    my ($text) = @_;
    my @s;
    while ($text =~ /"((?:[^"\\]|\\.)*)"/g) {
        (my $v = $1) =~ s/\\(.)/$1/g;
        push @s, $v;
    }
    return @s;
}

# the built-in rules and default user errors of the doc are the module's
{
    my $c = slurp("$repo/ngx_exchange_health_module/ngx_http_exchange_health_rules.c");
    my ($table) = $c =~ /ngx_http_exchange_health_default_rules\[\]\[\d+\] = \{(.*?)\n\};/s;
    ok defined $table, 'rules.c: the built-in rule table';
    my @c_rules;
    while (($table // '') =~ /\{\s*((?:ngx_http_exchange_health_arg\((?:[^()]|\([^()]*\))*\),\s*)+)ngx_null_string\s*\}/g) {
        push @c_rules, join ' ', c_strings($1);
    }
    my ($block) = $doc =~ /The built-in rules are:\s*```nginx\n(.*?)```/s;
    my @doc_rules = map { my @t = tokens($_); shift @t; join ' ', @t }
                    grep { /\S/ } split /;\s*\n/, $block // '';
    is scalar(@c_rules), 14, 'rules.c: fourteen built-in rules';
    is_deeply \@doc_rules, \@c_rules, 'the documented built-in rules are the module\'s, in order';

    my ($c_user) = $c =~ /ngx_http_exchange_health_default_user_errors =\s*ngx_string\((.*?)\);/s;
    my $c_regex = join '', c_strings($c_user // '');
    my ($d_user) = $ref{exchange_health_user_errors}{default} =~ /^exchange_health_user_errors (.*);$/;
    my ($d_regex) = tokens($d_user // '');
    like $c_regex, qr/QuotaExceeded/, 'rules.c: the default user errors';
    is $d_regex, $c_regex, 'the documented default user errors are the module\'s';

    my $st = slurp("$repo/ngx_exchange_health_module/ngx_http_exchange_health_settle.c");
    my ($verdicts) = $st =~ /ngx_http_exchange_health_verdicts\[\] = \{(.*?)\};/s;
    my @c_verdicts = grep { $_ ne '-' } c_strings($verdicts // '');
    my ($vdoc) = $doc =~ /^`\$exchange_health_verdict`\n(.*?)\n\n/ms;
    my @d_verdicts = ($vdoc // '') =~ /`([a-z-]+)`/g;
    is scalar(@c_verdicts), 6, 'settle.c: six verdicts';
    is_deeply [ sort @d_verdicts ], [ sort @c_verdicts ],
        'the documented verdicts are the module\'s';
}

# the documented variables and the documented log_format
{
    my @vars = $doc =~ /^`\$(exchange_health_\w+)`/mg;
    is_deeply [ sort @vars ],
        [ qw(exchange_health_protocol exchange_health_rule
             exchange_health_server exchange_health_verdict) ],
        'directives.md: four variables documented';
    my ($fmt) = $doc =~ /```nginx\n(log_format exchange .*?;)\n```/s;
    ok defined $fmt, 'directives.md: the log_format example';
    my $ng = nginx(http => conf_with('http', ($fmt // '')
        . "\n    access_log {{PREFIX}}/logs/exchange.log exchange;"));
    my ($rc, $out) = $ng->test_config;
    is $rc, 0, 'the documented log_format is accepted' or diag $out;
    for my $v (@vars) {
        my $ng = nginx(http => conf_with('http', "log_format v$v '\$$v';"));
        my ($rc, $out) = $ng->test_config;
        is $rc, 0, "\$$v is a variable" or diag $out;
    }
}

# the short example at the top of directives.md
{
    my ($block) = $doc =~ /```nginx\n(load_module .*?)```/s;
    ok defined $block, 'directives.md: the opening example';
    my ($http) = ($block // '') =~ /^http \{\n(.*)^\}/ms;
    ok defined $http, 'directives.md: its http block';
    $http //= '';
    my $i = 0;
    $http =~ s/\b10\.0\.0\.1[123]:443\b/$exch[$i++]->addr/ge;
    is $i, 3, 'directives.md: its three servers';
    $http =~ s/listen 443 ssl;/listen 127.0.0.1:{{PORT}} ssl;/;
    $http =~ s{^(\s*)\.\.\.\n}{${1}ssl_certificate $mail->{cert};\n${1}ssl_certificate_key $mail->{key};\n}m;
    my $ng = nginx(http => $http, tls => 1);
    my ($rc, $out) = $ng->test_config;
    is $rc, 0, 'the opening example of directives.md passes nginx -t' or diag "$out\n$http";
    $ng->start;
    my $r = $ng->request(GET => '/owa/', signed_in => 'alice');
    is $r->{status}, 200, 'the opening example of directives.md serves OWA';
    $ng->stop;
}

# --------------------------------------------------------------------
# docs/architecture.md: names every source file, and the functions it
# names exist
{
    my $arch = slurp("$docs/architecture.md");
    my $src = "$repo/ngx_exchange_health_module";
    opendir my $dh, $src or die "$src: $!";
    my @files = sort grep { /\.[ch]\z/ } readdir $dh;
    my @missing = grep { my $f = $_; my $stem = $f =~ s/\.[ch]\z//r;
                         $arch !~ /\Q$f\E/ && $arch !~ /`\Q$stem\E\.c` \/ `\.h`/ } @files;
    is "@missing", '', 'architecture.md names every source file (' . scalar(@files) . ')';
    my $code = join '', map { slurp("$src/$_") } @files;
    my ($life) = $arch =~ /## The life of a proxied request(.*?)## Shared memory/s;
    my @names = $life =~ /`([a-z_]+)`/g;
    my @unknown = grep { $code !~ /\bngx_http_exchange_health_\Q$_\E\(/ } @names;
    ok @names >= 30, 'architecture.md: the request\'s path names its functions (' . scalar(@names) . ')';
    is "@unknown", '', 'architecture.md: every function it names exists';

    # one place where an attempt's verdict changes: judged (judge.c)
    my @writers;
    for my $f (@files) {
        my $c = slurp("$src/$f");
        push @writers, "$f:$1" while $c =~ /(\w+)->verdict\s*=(?!=)/g;
    }
    is "@writers", 'ngx_http_exchange_health_judge.c:a',
        'an attempt\'s verdict is written in one place (judged, judge.c)';
    like slurp("$src/ngx_http_exchange_health_judge.c"),
        qr/\nngx_http_exchange_health_judged\(.*?\n\}/s,
        'judge.c defines judged';

    # a slot's state is changed in state.c only, one function per change;
    # zone.c makes a slot, restore.c restores it from the state file
    my $field = qr/(?:state|until|trial|up_since|since|level|admin|probe
                     |probe_time|probe_fails|ejections|failing)/x;
    my $write = qr/\s*(?:[-+|&]?=(?!=)|\+\+|--)/;
    my @slot_writers;
    for my $f (grep { !/_(?:state|zone|restore)\.c\z/ } @files) {
        my $c = slurp("$src/$f");
        push @slot_writers, "$f:$1"
            while $c =~ /(slot(?:->|\[[^]]*\]\.)$field)$write/g;
    }
    is "@slot_writers", '',
        'a slot\'s state is written in state.c only (admin.c, probe.c call it)';

    # the status location's files: who calls whom, as the page says, and
    # no circle (a file calls another when it calls a function the other
    # defines)
    my %defined;
    for my $f (@files) {
        my $c = slurp("$src/$f");
        $defined{$1} //= $f while $c =~ /^(ngx_http_exchange_health_\w+)\(/mg;
    }
    my $short = sub { $_[0] =~ s/^ngx_http_exchange_health_//r };
    my @status = grep { /_(?:status\w*|admin)\.c\z/ } @files;
    my (%code, %doc);
    for my $f (@status) {
        my $c = slurp("$src/$f");
        my %to;
        while ($c =~ /\b(ngx_http_exchange_health_\w+)\s*\(/g) {
            my $d = $defined{$1};
            $to{$short->($d)} = 1 if $d && $d ne $f && grep { $_ eq $d } @status;
        }
        $code{$short->($f)} = join ' ', sort keys %to;
    }
    my ($loc) = $arch =~ /## The status location(.*?)\n## /s;
    while (($loc // '') =~ /^- `(\w+\.c)` calls (.*?)(?=\n- |\n\n)/msg) {
        my ($f, $list) = ($1, $2);
        $doc{$f} = join ' ', sort $list =~ /`(\w+\.c)`/g;
    }
    # functions named without their prefix; full names are tables, metrics
    my @named = grep { !/^(?:ngx_|exchange_)/ } ($loc // '') =~ /`([a-z_]+)`/g;
    my @gone = grep { $code !~ /\bngx_http_exchange_health_\Q$_\E\(/ } @named;
    is "@gone", '', 'architecture.md: the status location\'s functions exist ('
        . scalar(@named) . ')';
    is_deeply \%doc, \%code,
        'architecture.md: the status location\'s files call what it says ('
        . scalar(keys %code) . ' files)';
    my $circle;
    my $visit;
    $visit = sub {      # every path: a handful of files
        my ($f, @path) = @_;
        return $circle = join(' -> ', @path, $f) if grep { $_ eq $f } @path;
        $visit->($_, @path, $f) for split ' ', $code{$f} // '';
    };
    $visit->($_) for sort keys %code;
    is $circle, undef, 'the status location\'s files call each other in no circle';
    ok $code{'status_handler.c'} =~ /\bstatus\.c\b/
       && $code{'status.c'} eq '' && $code{'status_writer.c'} eq '',
        'the handler calls the snapshot; the snapshot and the writer call none of them';

    # the whole module: no file calls, through others, back into itself
    my %to;
    for my $f (grep { /\.c\z/ } @files) {
        my $c = slurp("$src/$f") =~ s{/\*.*?\*/}{}gsr;
        while ($c =~ /\b(ngx_http_exchange_health_\w+)\s*\(/g) {
            my $d = $defined{$1};
            $to{$f}{$d} = 1 if $d && $d ne $f && $d =~ /\.c\z/;
        }
    }
    my (%color, $loop);
    my $dfs;
    $dfs = sub {        # grey while on the path, black once done
        my ($f, @path) = @_;
        return if ($color{$f} // '') eq 'black' || $loop;
        if (($color{$f} // '') eq 'grey') {
            my @from = @path;
            shift @from while @from && $from[0] ne $f;
            return $loop = join ' -> ', map { $short->($_) } @from, $f;
        }
        $color{$f} = 'grey';
        $dfs->($_, @path, $f) for sort keys %{ $to{$f} || {} };
        $color{$f} = 'black';
    };
    $dfs->($_) for sort keys %to;
    is $loop, undef, 'no source file calls, through others, back into itself ('
        . scalar(grep { /\.c\z/ } @files) . ' files)';
}

done_testing;
