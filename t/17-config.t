#!/usr/bin/perl

# Bad configurations fail "nginx -t" with a message that names the
# problem, the configuration file and the line of the offending
# directive; the good configurations next to them pass.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

# A small front end: levels to put directives at.  No backend is needed:
# nginx -t does not connect.
#   zone     => the exchange_health_zone line(s) (default: exchange 1m)
#   balancer => the exchange_health line (default: zone=exchange)
#   upstream => more lines in the upstream, after the balancer
#   http, server, location => lines at those levels
#   locations => more location blocks
sub conf {
    my (%o) = @_;
    my $zone = $o{zone} // 'exchange_health_zone exchange 1m;';
    my $balancer = $o{balancer} // 'exchange_health zone=exchange;';
    my ($upstream, $http, $server, $location, $locations, $after) =
        map { $o{$_} // '' } qw(upstream http server location locations after);
    return <<"CONF";
$zone

upstream exchange {
    server 127.0.0.1:8001;
    server 127.0.0.1:8002;
    server 127.0.0.1:8003;
    $balancer
    $upstream
}

$http

server {
    listen 127.0.0.1:{{PORT}};
    $server

    location / {
        proxy_pass http://exchange;
        $location
    }
    $locations
}
$after
CONF
}

# nginx -t on conf(%o): (exit status, output, test.conf path, its text)
sub check {
    my (%o) = @_;
    my $ng = nginx(http => conf(%o));
    my ($rc, $out) = $ng->test_config;
    my $file = $ng->prefix . '/conf/test.conf';
    return ($rc, $out, $file, slurp($file));
}

# The line number of the only line of $text containing $marker.
sub line_of {
    my ($text, $marker) = @_;
    my @lines = split /\n/, $text, -1;
    my @n = grep { index($lines[$_], $marker) >= 0 } 0 .. $#lines;
    return @n == 1 ? $n[0] + 1 : undef;
}

# bad(name, marker => text of the offending line (as written),
#     re => what the message says, conf options...)
sub bad {
    my ($name, %o) = @_;
    my $marker = delete $o{marker};
    my $re = delete $o{re};
    my $nth = delete $o{nth};            # marker's line: the nth occurrence
    my ($rc, $out, $file, $text) = check(%o);
    my $line;
    if ($nth) {
        my @lines = split /\n/, $text, -1;
        my @n = grep { index($lines[$_], $marker) >= 0 } 0 .. $#lines;
        $line = defined $n[$nth - 1] ? $n[$nth - 1] + 1 : undef;
    }
    else {
        $line = line_of($text, $marker);
    }
    ok defined $line, "$name: (the test's marker '$marker' is on one line)" or return;
    isnt $rc, 0, "$name: nginx -t fails" or diag $out;
    like $out, qr/\[emerg\] [^\n]*$re/, "$name: the message names the problem"
        or diag "config:\n$text";
    like $out, qr/\[emerg\] [^\n]*$re[^\n]* in \Q$file\E:$line\n/,
        "$name: ... and $file:$line";
}

sub good {
    my ($name, %o) = @_;
    my ($rc, $out, $file, $text) = check(%o);
    is $rc, 0, "$name: nginx -t passes" or diag "$out\nconfig:\n$text";
    unlike $out, qr/\[(?:emerg|alert|crit|error|warn)\]/, "$name: without complaints"
        or diag $out;
}

good('the base configuration');

# -------------------------------------------------------------- exchange_health
bad('exchange_health without zone=',
    balancer => 'exchange_health scope=server;',
    marker => 'exchange_health scope=server;',
    re => qr/"exchange_health" needs "zone="/);
bad('exchange_health with an empty zone=',
    balancer => 'exchange_health zone=;',
    marker => 'exchange_health zone=;',
    re => qr/no zone name in "zone="/);
good('exchange_health zone= scope=server',
    balancer => 'exchange_health zone=exchange scope=server;');
good('exchange_health zone= scope=protocol',
    balancer => 'exchange_health zone=exchange scope=protocol;');

bad('exchange_health naming an undeclared zone',
    balancer => 'exchange_health zone=x;',
    marker => 'exchange_health zone=x;',
    re => qr/unknown exchange_health_zone "x"/);
bad('exchange_health naming an undeclared zone, no zone at all',
    zone => '',
    marker => 'exchange_health zone=exchange;',
    re => qr/unknown exchange_health_zone "exchange"/);
good('the zone declared after the upstream',
    zone => '', after => 'exchange_health_zone exchange 1m;');
good('two upstreams sharing one zone',
    after => "upstream other {\n    server 127.0.0.1:8004;\n"
           . "    exchange_health zone=exchange;\n}");

bad('exchange_health with an unknown parameter',
    balancer => 'exchange_health zone=exchange foo=bar;',
    marker => 'exchange_health zone=exchange foo=bar;',
    re => qr/invalid parameter "foo=bar"/);
bad('exchange_health scope= with an unknown scope',
    balancer => 'exchange_health zone=exchange scope=user;',
    marker => 'exchange_health zone=exchange scope=user;',
    re => qr/invalid parameter "scope=user"/);
bad('exchange_health twice',
    upstream => 'exchange_health zone=exchange; # again',
    marker => '# again',
    re => qr/"exchange_health" directive is duplicate/);

# -------------------------------------------------------------- exchange_health_eject
good('exchange_health_eject with every parameter',
    upstream => 'exchange_health_eject fails=1 window=10s users=1 time=5s '
              . 'max_time=1h max_ejected=1;');
good('exchange_health_eject max_ejected as a percentage',
    upstream => 'exchange_health_eject max_ejected=100%;');
good('exchange_health_eject max_ejected=0',
    upstream => 'exchange_health_eject max_ejected=0;');
good('exchange_health_eject with times in ms and m',
    upstream => 'exchange_health_eject window=1500ms time=500ms max_time=2m;');

for my $p ('fails=0', 'fails=x', 'fails=-1', 'users=0', 'window=abc',
           'window=0', 'time=0', 'time=later', 'max_time=5q',
           'max_ejected=150%', 'max_ejected=-1', 'max_ejected=some',
           'max_ejected=%')
{
    bad("exchange_health_eject $p",
        upstream => "exchange_health_eject $p;",
        marker => "exchange_health_eject $p;",
        re => qr/invalid value in "\Q$p\E"/);
}
bad('exchange_health_eject with an unknown parameter',
    upstream => 'exchange_health_eject fails=3 bogus=1;',
    marker => 'exchange_health_eject fails=3 bogus=1;',
    re => qr/invalid parameter "bogus=1"/);
bad('exchange_health_eject voters= with an unknown kind',
    upstream => 'exchange_health_eject voters=everyone;',
    marker => 'exchange_health_eject voters=everyone;',
    re => qr/invalid parameter "voters=everyone", use .*"voters="/);
good('exchange_health_eject voters=any and voters=signed_in',
    upstream => 'exchange_health_eject users=3 voters=any;');
bad('exchange_health_eject twice',
    upstream => "exchange_health_eject fails=3;\n    exchange_health_eject time=1m;",
    marker => 'exchange_health_eject time=1m;',
    re => qr/"exchange_health_eject" directive is duplicate/);

# -------------------------------------------------------------- exchange_health_zone
# docs/directives.md: "Each server takes one 4 KB page ... `32k`, the
# smallest size, holds 5 servers, `64k` 13, `1m` about 250.  When the zone
# is full, ... the error log says so once: exchange_health zone "NAME" is
# full".
good('the smallest zone, 32k, for the 3 servers of the example',
    zone => 'exchange_health_zone exchange 32k;');
{
    my $servers = join "\n", map { "    server 127.0.0.1:" . (10000 + $_) . ";" } 1 .. 250;
    my $zone_of = sub {
        my ($size) = @_;
        my $ng = nginx(http => "exchange_health_zone exchange $size;\n"
            . "upstream big {\n$servers\n    exchange_health zone=exchange;\n}\n"
            . "server {\n    listen 127.0.0.1:{{PORT}};\n"
            . "    location / { proxy_pass http://big; }\n}\n");
        return [ $ng->test_config ];
    };
    my $r = $zone_of->('1m');
    is $r->[0], 0, 'a 1m zone, 250 servers: nginx -t passes';
    unlike $r->[1], qr/is full/, 'a 1m zone holds 250 servers'
        or diag $r->[1];

    $r = $zone_of->('64k');
    is $r->[0], 0, 'a full zone does not fail nginx -t';
    my @full = $r->[1] =~ /(\[\w+\] [^\n]*is full[^\n]*)/g;
    is scalar(@full), 1, 'a full zone is reported once';
    like $full[0] // '', qr/^\[\w+\] exchange_health zone "exchange" is full/,
        'a full zone is reported as: exchange_health zone "exchange" is full'
        or diag $r->[1];
}
bad('exchange_health_zone with a bad size',
    zone => 'exchange_health_zone exchange 1q;',
    marker => 'exchange_health_zone exchange 1q;',
    re => qr/invalid zone size "1q"/);
bad('exchange_health_zone too small',
    zone => 'exchange_health_zone exchange 16k;',
    marker => 'exchange_health_zone exchange 16k;',
    re => qr/zone "exchange" is too small, at least 32k/);
bad('exchange_health_zone with one argument',
    zone => 'exchange_health_zone exchange;',
    marker => 'exchange_health_zone exchange;',
    re => qr/invalid number of arguments in "exchange_health_zone" directive/);
bad('exchange_health_zone declared twice',
    zone => "exchange_health_zone exchange 1m;\nexchange_health_zone exchange 1m;",
    marker => 'exchange_health_zone exchange 1m;', nth => 2,
    re => qr/duplicate zone "exchange"/);
bad('exchange_health_zone declared twice with different sizes',
    zone => "exchange_health_zone exchange 1m;\nexchange_health_zone exchange 2m;",
    marker => 'exchange_health_zone exchange 2m;',
    re => qr/shared memory zone "exchange" conflicts with already declared size/);
bad('exchange_health_zone named like an upstream zone',
    upstream => 'zone exchange 64k;',
    marker => 'zone exchange 64k;',
    re => qr/shared memory zone "exchange" is already declared for a different use/);
good('an upstream zone with a name of its own',
    upstream => 'zone exchange_peers 64k;');

# -------------------------------------------------------------- exchange_health_rule
good('rules with every kind of condition',
    http => 'exchange_health_rule r1 status=500,502 header=X-A header=X-B~^a header=X-C~*b;',
    server => 'exchange_health_rule r2 status=5xx,1xx,599 "body=Server Error in \'/" '
            . 'body=abc scope=user;',
    location => 'exchange_health_rule r3 body=' . ('a' x 64) . ' scope=server;');
# a location's rules, the 14 built-in ones with them, are bits of a word
good('64 rules with the built-in ones',
    http => join("\n", map { "exchange_health_rule many$_ status=500 header=X-M$_;" } 1 .. 50));
bad('65 rules with the built-in ones',
    http => join("\n", map { "exchange_health_rule many$_ status=500 header=X-M$_;" } 1 .. 51),
    marker => 'exchange_health_rule many51 ',
    re => qr/too many exchange_health rules, at most 64/);
bad('exchange_health_rule status 600',
    location => 'exchange_health_rule r1 status=600;',
    marker => 'exchange_health_rule r1 status=600;',
    re => qr/invalid status "600" in rule "r1"/);
bad('exchange_health_rule status 99',
    location => 'exchange_health_rule r1 status=500,99;',
    marker => 'exchange_health_rule r1 status=500,99;',
    re => qr/invalid status "99" in rule "r1"/);
bad('exchange_health_rule status class 6xx',
    location => 'exchange_health_rule r1 status=6xx;',
    marker => 'exchange_health_rule r1 status=6xx;',
    re => qr/invalid status "6xx" in rule "r1"/);
bad('exchange_health_rule status not a number',
    server => 'exchange_health_rule r1 status=error;',
    marker => 'exchange_health_rule r1 status=error;',
    re => qr/invalid status "error" in rule "r1"/);
bad('exchange_health_rule header regex that does not compile',
    http => 'exchange_health_rule r1 header=X~(;',
    marker => 'exchange_health_rule r1 header=X~(;',
    re => qr/pcre2?_compile\(\) failed: [^\n]*in "\("/);
bad('exchange_health_rule case-insensitive header regex that does not compile',
    http => 'exchange_health_rule r1 header=X~*[a;',
    marker => 'exchange_health_rule r1 header=X~*[a;',
    re => qr/pcre2?_compile\(\) failed: [^\n]*in "\[a"/);
bad('exchange_health_rule header with no name',
    location => 'exchange_health_rule r1 header=~x;',
    marker => 'exchange_health_rule r1 header=~x;',
    re => qr/no header name in "header=~x" of rule "r1"/);
bad('exchange_health_rule header with an empty regex',
    location => 'exchange_health_rule r1 header=X-A~;',
    marker => 'exchange_health_rule r1 header=X-A~;',
    re => qr/empty regex in "header=X-A~" of rule "r1"/);
bad('exchange_health_rule with no condition',
    location => 'exchange_health_rule r1 scope=user;',
    marker => 'exchange_health_rule r1 scope=user;',
    re => qr/rule "r1" has no condition/);
bad('exchange_health_rule with a name only',
    server => 'exchange_health_rule r1;',
    marker => 'exchange_health_rule r1;',
    re => qr/rule "r1" has no condition/);
my $long = 'b' x 65;
bad('exchange_health_rule body marker of 65 bytes',
    location => "exchange_health_rule r1 body=$long;",
    marker => "exchange_health_rule r1 body=$long;",
    re => qr/body marker "$long" must be 1 to 64 bytes/);
bad('exchange_health_rule empty body marker',
    location => 'exchange_health_rule r1 status=500 body=;',
    marker => 'exchange_health_rule r1 status=500 body=;',
    re => qr/body marker "" must be 1 to 64 bytes/);
for my $v ('scan=', 'scan=0', 'scan=lots', 'scan=-1k') {
    bad("exchange_health_rule with $v",
        location => "exchange_health_rule r1 body=x $v;",
        marker => "exchange_health_rule r1 body=x $v;",
        re => qr/invalid size in "\Q$v\E" of rule "r1"/);
}
bad('exchange_health_rule with scan= but no body=',
    location => 'exchange_health_rule r1 status=500 scan=4k;',
    marker => 'exchange_health_rule r1 status=500 scan=4k;',
    re => qr/rule "r1" has "scan=" but no "body=" marker to look for/);
good('exchange_health_rule with scan=',
    location => 'exchange_health_rule r1 body=x scan=1k;');
bad('exchange_health_rule with an absent header and a regex',
    location => 'exchange_health_rule r1 status=502 header=!X-A~b;',
    marker => 'exchange_health_rule r1 status=502 header=!X-A~b;',
    re => qr/"header=!X-A~b" of rule "r1": an absent header has no value to match/);
bad('exchange_health_rule with header=! and no name',
    location => 'exchange_health_rule r1 status=502 header=!;',
    marker => 'exchange_health_rule r1 status=502 header=!;',
    re => qr/no header name in "header=!" of rule "r1"/);
good('exchange_health_rule with an absent header',
    location => 'exchange_health_rule r1 status=502 header=!X-FEServer;');
bad('exchange_health_rule with after= but no body=',
    location => 'exchange_health_rule r1 status=500 after=x;',
    marker => 'exchange_health_rule r1 status=500 after=x;',
    re => qr/rule "r1" has "after=" but no "body=" marker to look for/);
bad('exchange_health_rule with an empty after=',
    location => 'exchange_health_rule r1 body=x after=;',
    marker => 'exchange_health_rule r1 body=x after=;',
    re => qr/empty "after=" in rule "r1"/);
my $half = 'y' x 40;
bad('exchange_health_rule with after= and body= over 64 bytes',
    location => "exchange_health_rule r1 body=$half after=$half;",
    marker => "exchange_health_rule r1 body=$half after=$half;",
    re => qr/"after=$half" and "body=$half" of rule "r1" are over 64 bytes together/);
good('exchange_health_rule with after=',
    location => 'exchange_health_rule r1 "body=Server Error" "after=<title>";');
bad('exchange_health_rule with an unknown parameter',
    location => 'exchange_health_rule r1 status=500 colour=red;',
    marker => 'exchange_health_rule r1 status=500 colour=red;',
    re => qr/invalid parameter "colour=red" in rule "r1"/);
bad('exchange_health_rule with an unknown scope',
    location => 'exchange_health_rule r1 status=500 scope=farm;',
    marker => 'exchange_health_rule r1 status=500 scope=farm;',
    re => qr/invalid parameter "scope=farm" in rule "r1"/);
my $longname = 'r' x 24;
bad('exchange_health_rule name of 24 characters',
    location => "exchange_health_rule $longname status=500;",
    marker => "exchange_health_rule $longname status=500;",
    re => qr/rule name "$longname" must be 1 to 23 characters/);
good('exchange_health_rule name of 23 characters',
    location => 'exchange_health_rule ' . ('r' x 23) . ' status=500;');
bad('exchange_health_rule defined twice at one level',
    server => "exchange_health_rule r1 status=500;\n    exchange_health_rule r1 status=502;",
    marker => 'exchange_health_rule r1 status=502;',
    re => qr/duplicate rule "r1"/);
good('exchange_health_rule redefined at an inner level',
    server => 'exchange_health_rule r1 status=500;',
    location => 'exchange_health_rule r1 status=502;');

for my $builtin (qw(errorfe-redirect errorfe-page fe500 ecp-json ecp-error aspnet-error
                    httpsys-503 iis-500 soap-fault)) {
    good("exchange_health_rule $builtin off", http => "exchange_health_rule $builtin off;");
}
good('exchange_health_rule off for a rule of an outer level',
    server => 'exchange_health_rule mine status=503;',
    location => 'exchange_health_rule mine off;');
good('exchange_health_rule replacing a built-in rule',
    location => 'exchange_health_rule fe500 status=500,503 header=X-FEServer;');
bad('exchange_health_rule off for an undefined rule, http level',
    http => 'exchange_health_rule nosuch off;',
    marker => 'exchange_health_rule nosuch off;',
    re => qr/rule "nosuch" to switch off is not defined/);
bad('exchange_health_rule off for an undefined rule, server level',
    server => 'exchange_health_rule nosuch off;',
    marker => 'exchange_health_rule nosuch off;',
    re => qr/rule "nosuch" to switch off is not defined/);
bad('exchange_health_rule off for an undefined rule, location level',
    location => 'exchange_health_rule nosuch off;',
    marker => 'exchange_health_rule nosuch off;',
    re => qr/rule "nosuch" to switch off is not defined/);
bad('exchange_health_rule off for a rule of a sibling location',
    locations => "location /a/ {\n        exchange_health_rule mine status=503;\n"
               . "        proxy_pass http://exchange;\n    }\n"
               . "    location /b/ {\n        exchange_health_rule mine off;\n"
               . "        proxy_pass http://exchange;\n    }",
    marker => 'exchange_health_rule mine off;',
    re => qr/rule "mine" to switch off is not defined/);

# -------------------------------------------------------------- exchange_health_retry
good("exchange_health_retry $_", location => "exchange_health_retry $_;")
    for 'on', 'off', 'on non_idempotent';
for my $v (['maybe', 'maybe'], ['on always', 'always'],
           ['off non_idempotent', 'non_idempotent'], ['ON', 'ON'])
{
    bad("exchange_health_retry $v->[0]",
        location => "exchange_health_retry $v->[0];",
        marker => "exchange_health_retry $v->[0];",
        re => qr/invalid value "$v->[1]", use "off", "on" or "on non_idempotent"/);
}
bad('exchange_health_protocol twice',
    location => "exchange_health_protocol owa;\n        exchange_health_protocol ecp;",
    marker => 'exchange_health_protocol ecp;',
    re => qr/"exchange_health_protocol" directive is duplicate/);
bad('exchange_health_hold twice',
    location => "exchange_health_hold 4k;\n        exchange_health_hold 8k 1s;",
    marker => 'exchange_health_hold 8k 1s;',
    re => qr/"exchange_health_hold" directive is duplicate/);
bad('exchange_health_retry twice',
    location => "exchange_health_retry on;\n        exchange_health_retry off;",
    marker => 'exchange_health_retry off;',
    re => qr/"exchange_health_retry" directive is duplicate/);

# -------------------------------------------------------------- exchange_health_protocol
good("exchange_health_protocol $_", location => "exchange_health_protocol $_;")
    for qw(auto owa ecp ews activesync mapi rpc oab autodiscover powershell other);
for my $p (qw(imap Microsoft-Server-ActiveSync all)) {
    bad("exchange_health_protocol $p",
        location => "exchange_health_protocol $p;",
        marker => "exchange_health_protocol $p;",
        re => qr/unknown Exchange protocol "\Q$p\E"/);
}

# -------------------------------------------------------------- exchange_health_user_errors
good('exchange_health_user_errors off', server => 'exchange_health_user_errors off;');
good('exchange_health_user_errors with a regex',
    server => 'exchange_health_user_errors "(Quota|Mailbox)[A-Za-z]*Exception";');
bad('exchange_health_user_errors with a bad regex',
    server => 'exchange_health_user_errors "(QuotaExceeded";',
    marker => 'exchange_health_user_errors "(QuotaExceeded";',
    re => qr/pcre2?_compile\(\) failed: [^\n]*in "\(QuotaExceeded"/);
bad('exchange_health_user_errors twice',
    location => "exchange_health_user_errors off;\n        exchange_health_user_errors x;",
    marker => 'exchange_health_user_errors x;',
    re => qr/"exchange_health_user_errors" directive is duplicate/);

# -------------------------------------------------------------- scan, hold, detect
good('exchange_health_scan 64k', location => 'exchange_health_scan 64k;');
bad('exchange_health_scan with a bad size',
    location => 'exchange_health_scan lots;',
    marker => 'exchange_health_scan lots;',
    re => qr/"exchange_health_scan" directive invalid value/);
good('exchange_health_hold size only', location => 'exchange_health_hold 8k;');
good('exchange_health_hold size and time', location => 'exchange_health_hold 8k 1s;');
bad('exchange_health_hold with a bad size',
    location => 'exchange_health_hold 4q;',
    marker => 'exchange_health_hold 4q;',
    re => qr/invalid hold size "4q"/);
bad('exchange_health_hold with a bad time',
    location => 'exchange_health_hold 4k soon;',
    marker => 'exchange_health_hold 4k soon;',
    re => qr/invalid hold time "soon"/);
good("exchange_health_detect $_", location => "exchange_health_detect $_;") for qw(on off);
bad('exchange_health_detect with a bad value',
    location => 'exchange_health_detect maybe;',
    marker => 'exchange_health_detect maybe;',
    re => qr/invalid value "maybe" in "exchange_health_detect" directive, it must be "on" or "off"/);

# ------------------------------------------------ probes, status, state file
good('exchange_health_probe with every parameter',
    upstream => 'exchange_health_probe interval=5s timeout=2s fails=3 '
        . 'cert_warn=14d tls=on sni=mail.contoso.com protocols=owa,ecp;'
        . ' exchange_health_probe_uri owa /owa/healthcheck.htm;');
for my $p ('interval=0', 'interval=soon', 'timeout=-1s', 'fails=0',
           'fails=256', 'cert_warn=1q', 'protocols=') {
    bad("exchange_health_probe $p",
        upstream => "exchange_health_probe $p;",
        marker => "exchange_health_probe $p;",
        re => qr/invalid value in "\Q$p\E"/);
}
bad('exchange_health_probe with an unknown protocol',
    upstream => 'exchange_health_probe protocols=owa,imap;',
    marker => 'exchange_health_probe protocols=owa,imap;',
    re => qr/unknown protocol "imap" in "protocols=owa,imap"/);
bad('exchange_health_probe with an unknown parameter',
    upstream => 'exchange_health_probe every=5s;',
    marker => 'exchange_health_probe every=5s;',
    re => qr/invalid parameter "every=5s", use "interval=", /);
bad('exchange_health_probe twice',
    upstream => "exchange_health_probe;\n    exchange_health_probe interval=1s;",
    marker => 'exchange_health_probe interval=1s;',
    re => qr/"exchange_health_probe" directive is duplicate/);
bad('exchange_health_probe_uri before exchange_health_probe',
    upstream => 'exchange_health_probe_uri owa /owa/healthcheck.htm;',
    marker => 'exchange_health_probe_uri owa /owa/healthcheck.htm;',
    re => qr/"exchange_health_probe_uri" directive needs "exchange_health_probe" before it/);
bad('exchange_health_probe_uri with an unknown protocol',
    upstream => "exchange_health_probe;\n    exchange_health_probe_uri imap /x;",
    marker => 'exchange_health_probe_uri imap /x;',
    re => qr/unknown protocol "imap"/);
bad('exchange_health_probe_uri with a URI not starting with /',
    upstream => "exchange_health_probe;\n    "
        . 'exchange_health_probe_uri owa owa/healthcheck.htm;',
    marker => 'exchange_health_probe_uri owa owa/healthcheck.htm;',
    re => qr{a probe URI starts with "/", not "owa/healthcheck.htm"});
# The probes and the policy would never act without the balancer's zone:
# nginx -t names the directive's file and line, wherever the upstream is
# first referred to, and passes over proxy_pass's implicit upstreams
for my $d ('exchange_health_probe;', 'exchange_health_eject fails=2;') {
    my ($name) = $d =~ /^(\w+)/;
    my ($rc, $out, $file, $text) = check(balancer => '# no balancer', upstream => $d,
        locations => 'location /direct/ { proxy_pass http://127.0.0.1:9; }');
    my $line = line_of($text, $d);
    isnt $rc, 0, "$name without exchange_health zone=: nginx -t fails";
    like $out, qr/\[emerg\] "$name" needs "exchange_health zone=" in upstream "exchange" in \Q$file\E:$line\n/,
        "$name without exchange_health zone=: the message names the upstream, the directive's file and line";
}
{
    # the upstream after the proxy_pass that uses it
    my $up = "upstream late {\n    server 127.0.0.1:8004;\n    exchange_health_eject fails=2;\n}";
    my ($rc, $out, $file, $text) = check(
        locations => 'location /late/ { proxy_pass http://late; }', after => $up);
    my $line = line_of($text, 'exchange_health_eject fails=2;');
    like $out, qr/\[emerg\] "exchange_health_eject" needs "exchange_health zone=" in upstream "late" in \Q$file\E:$line\n/,
        'an upstream defined after its proxy_pass: the directive\'s own line';
}
good('exchange_health_probe and _eject before exchange_health zone=',
    balancer => 'exchange_health_probe; exchange_health_eject fails=2;',
    upstream => 'exchange_health zone=exchange;');
good('exchange_health_status with admin=on and admin=off',
    locations => 'location = /s1 { exchange_health_status admin=on; }'
        . ' location = /s2 { exchange_health_status admin=off; }'
        . ' location = /s3 { exchange_health_status; }');
bad('exchange_health_status with an unknown parameter',
    locations => 'location = /s { exchange_health_status admin=yes; }',
    marker => 'exchange_health_status admin=yes;',
    re => qr/invalid parameter "admin=yes", use "admin=on" or "admin=off"/);
bad('exchange_health_status with two parameters',
    locations => 'location = /s { exchange_health_status admin=on json; }',
    marker => 'exchange_health_status admin=on json;',
    re => qr/invalid number of arguments in "exchange_health_status" directive/);
bad('exchange_health_zone with a parameter other than state=',
    zone => 'exchange_health_zone exchange 1m /var/lib/eh.state;',
    marker => 'exchange_health_zone exchange 1m /var/lib/eh.state;',
    re => qr/invalid parameter "\/var\/lib\/eh.state", use "state=" and a file path/);
bad('exchange_health_zone with an empty state=',
    zone => 'exchange_health_zone exchange 1m state=;',
    marker => 'exchange_health_zone exchange 1m state=;',
    re => qr/invalid parameter "state=", use "state=" and a file path/);

# -------------------------------------------------------------- contexts
my %wrong = (
    'exchange_health in a location' =>
        [ location => 'exchange_health zone=exchange; # misplaced', 'exchange_health' ],
    'exchange_health in a server' =>
        [ server => 'exchange_health zone=exchange; # misplaced', 'exchange_health' ],
    'exchange_health at http level' =>
        [ http => 'exchange_health zone=exchange; # misplaced', 'exchange_health' ],
    'exchange_health_zone in a server' =>
        [ server => 'exchange_health_zone other 1m;', 'exchange_health_zone' ],
    'exchange_health_zone in a location' =>
        [ location => 'exchange_health_zone other 1m;', 'exchange_health_zone' ],
    'exchange_health_zone in an upstream' =>
        [ upstream => 'exchange_health_zone other 1m;', 'exchange_health_zone' ],
    'exchange_health_eject at http level' =>
        [ http => 'exchange_health_eject fails=3;', 'exchange_health_eject' ],
    'exchange_health_eject in a location' =>
        [ location => 'exchange_health_eject fails=3;', 'exchange_health_eject' ],
    'exchange_health_rule in an upstream' =>
        [ upstream => 'exchange_health_rule r1 status=500;', 'exchange_health_rule' ],
    'exchange_health_retry in an upstream' =>
        [ upstream => 'exchange_health_retry off;', 'exchange_health_retry' ],
    'exchange_health_detect in an upstream' =>
        [ upstream => 'exchange_health_detect off;', 'exchange_health_detect' ],
    'exchange_health_status at http level' =>
        [ http => 'exchange_health_status;', 'exchange_health_status' ],
    'exchange_health_status in an upstream' =>
        [ upstream => 'exchange_health_status;', 'exchange_health_status' ],
    'exchange_health_probe in a location' =>
        [ location => 'exchange_health_probe;', 'exchange_health_probe' ],
    'exchange_health_probe at http level' =>
        [ http => 'exchange_health_probe;', 'exchange_health_probe' ],
    'exchange_health_probe_uri in a server' =>
        [ server => 'exchange_health_probe_uri owa /x;', 'exchange_health_probe_uri' ],
);
for my $name (sort keys %wrong) {
    my ($level, $line, $directive) = @{ $wrong{$name} };
    bad($name, $level => $line, marker => $line,
        re => qr/"$directive" directive is not allowed here/);
}
{
    my $ng = nginx(http => conf(), main => 'exchange_health_zone exchange2 1m;');
    my ($rc, $out) = $ng->test_config;
    my $file = $ng->prefix . '/conf/test.conf';
    my $line = line_of(slurp($file), 'exchange_health_zone exchange2 1m;');
    isnt $rc, 0, 'exchange_health_zone in the main context: nginx -t fails';
    like $out, qr/"exchange_health_zone" directive is not allowed here in \Q$file\E:$line\n/,
        'exchange_health_zone in the main context: not allowed, with file and line';
}

# ---------------------------------------------------------------- balancers
# exchange_health balances with round robin: no other method may come
# before or after it in an upstream; keepalive may only follow it (its
# cache wraps the balancer); nginx's upstream zone goes anywhere.  Each
# order used to pass with nginx's "load balancing method redefined" and
# then abort nginx -t (free(): invalid size) or drop the module silently.
#
# From nginx 1.29.7 on, keepalive is on by default and wraps every
# upstream's balancer once all are set up, wherever its directive stands:
# "keepalive" before exchange_health is then as good as after it.
my $EH = 'exchange_health zone=exchange;';
my ($maj, $min, $pat) = nginx_version();
my $keepalive_late = nginx_version(1, 29, 7);
for my $m ('least_conn;', 'ip_hash;', 'hash $remote_addr;',
           'hash $remote_addr consistent;', 'random;', 'random two;',
           'keepalive 8;') {
    if ($m eq 'keepalive 8;' && $keepalive_late) {
        good("$m before exchange_health (nginx $maj.$min.$pat)",
             balancer => "$m\n    $EH");
        next;
    }
    bad("$m before exchange_health",
        balancer => "$m\n    $EH", marker => $EH,
        re => qr/"exchange_health" must be the first load balancing directive of upstream "exchange": put "keepalive" after it/);
}
for my $m ('least_conn;', 'ip_hash;', 'hash $remote_addr;',
           'hash $remote_addr consistent;', 'random;', 'random two;') {
    bad("$m after exchange_health", upstream => $m, marker => $EH,
        re => qr/another load balancing method replaced "exchange_health" in upstream "exchange": .*only "keepalive" may follow it/);
    bad("$m after exchange_health and keepalive",
        upstream => "keepalive 8;\n    $m", marker => $EH,
        re => qr/another load balancing method replaced "exchange_health"/);
}
good('keepalive after exchange_health', upstream => 'keepalive 8;');
good('zone after exchange_health', upstream => 'zone upstream_exchange 64k;');
good('zone before exchange_health',
     balancer => "zone upstream_exchange 64k;\n    $EH");
good('zone before, keepalive after',
     balancer => "zone upstream_exchange 64k;\n    $EH",
     upstream => 'keepalive 8;');

done_testing;
