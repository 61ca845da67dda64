package Bench;

# Shared infrastructure of bench/run and bench/load-flapping: simulated
# Exchange back ends (plain nginx serving the captures' bodies with the
# headers Exchange sends), the front nginx with and without the module,
# wrk, /proc readings, and small statistics.  Built on the test harness
# in t/lib (EH::Nginx, EH::Capture, EH::Cert); measures, never asserts.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use IO::Socket::INET;
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

use EH::Util qw(run_dir repo_root slurp spew wait_until);
use EH::Capture ();
use EH::Cert ();
use EH::Nginx ();

our $QUIET = 0;

# ---------------------------------------------------------------- output

# say(...): a line on stdout (and in the run's report file when set)
our $REPORT_FH;

sub say {
    my $line = join '', @_;
    print "$line\n";
    print {$REPORT_FH} "$line\n" if $REPORT_FH;
}

sub note {
    return if $QUIET;
    my $line = join '', @_;
    printf STDERR "%s  %s\n", POSIX::strftime('%H:%M:%S', localtime), $line;
}

# ---------------------------------------------------------------- machine

sub loadavg {
    open my $fh, '<', '/proc/loadavg' or return '?';
    my ($a, $b, $c) = split ' ', scalar <$fh>;
    return "$a $b $c";
}

sub load1 { (split ' ', loadavg())[0] }

# Processes other than ours that use the CPU now (for the report).
sub busy_others {
    my (%mine) = map { $_ => 1 } @_;
    my @busy;
    for my $line (`ps -eo pid,pcpu,comm --sort=-pcpu 2>/dev/null`) {
        my ($pid, $cpu, $comm) = $line =~ /^\s*(\d+)\s+([\d.]+)\s+(.*)$/ or next;
        next if $mine{$pid} || $pid == $$ || $cpu < 5;
        push @busy, "$comm $cpu%";
        last if @busy >= 4;
    }
    return @busy ? join(', ', @busy) : 'none';
}

sub machine {
    my %m;
    ($m{cpu}) = slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
    ($m{cores}) = `nproc` =~ /(\d+)/;
    my ($mem) = slurp('/proc/meminfo') =~ /MemTotal:\s+(\d+)/;
    $m{mem} = sprintf '%.0f GB', ($mem // 0) / 1024 / 1024;
    chomp($m{kernel} = `uname -r`);
    $m{os} = -r '/etc/debian_version' ? 'Debian ' . slurp('/etc/debian_version') : '';
    chomp $m{os};
    ($m{nginx}) = (`$EH::Nginx::DEFAULT_NGINX -v 2>&1` // '') =~ m{nginx/(\S+)};
    ($m{wrk}) = (`wrk --version 2>&1` // '') =~ /^wrk (\S+)/m;
    ($m{openssl}) = (`openssl version 2>/dev/null` // '') =~ /^(\S+ \S+)/;
    return \%m;
}

# Which module was measured: the .so's checksum and date, and the source
# tree's commit (read-only git commands).
sub module_line {
    my ($so) = @_;
    my $root = repo_root();
    my ($sum) = (`sha1sum '$so' 2>/dev/null` // '') =~ /^([0-9a-f]{10})/;
    my $date = POSIX::strftime('%Y-%m-%d %H:%M', localtime((stat $so)[9] // 0));
    chomp(my $commit = `git -C '$root' rev-parse --short HEAD 2>/dev/null` // '');
    my $dirty = `git -C '$root' status --porcelain -- ngx_exchange_health_module config 2>/dev/null`;
    return sprintf '%s (sha1 %s, built %s) from commit %s%s', $so, $sum // '?', $date,
        $commit || '?', length($dirty // '') ? ' with uncommitted changes to the C sources' : '';
}

sub machine_line {
    my $m = machine();
    return sprintf '%s x %s cores, %s RAM, %s, kernel %s, nginx %s, wrk %s, %s',
        $m->{cpu} // '?', $m->{cores} // '?', $m->{mem}, $m->{os} || '?',
        $m->{kernel}, $m->{nginx} // '?', $m->{wrk} // '?', $m->{openssl} // '?';
}

$EH::Nginx::DEFAULT_NGINX = $ENV{EH_NGINX} // '/usr/sbin/nginx';

# ---------------------------------------------------------------- /proc

# utime + stime of a process, in seconds
sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return undef;
    my $stat = <$fh>;
    close $fh;
    $stat =~ s/^.*\)\s+//s;
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / (POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100);
}

# { VmRSS => kB, RssAnon => kB, RssFile => kB, RssShmem => kB }
sub memory {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    my %m;
    while (<$fh>) {
        $m{$1} = $2 if /^(VmRSS|RssAnon|RssFile|RssShmem|VmSize):\s+(\d+) kB/;
    }
    return \%m;
}

sub fd_count {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return undef;
    my $n = grep { /^\d+$/ } readdir $dh;
    return $n;
}

sub fd_list {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return ();
    my @l;
    for my $fd (sort { $a <=> $b } grep { /^\d+$/ } readdir $dh) {
        push @l, "$fd -> " . (readlink("/proc/$pid/fd/$fd") // '?');
    }
    return @l;
}

# ---------------------------------------------------------------- stats

sub median { percentile(50, @_) }

sub percentile {
    my ($p, @v) = @_;
    return undef unless @v;
    @v = sort { $a <=> $b } @v;
    my $i = $p / 100 * (@v - 1);
    my $lo = int $i;
    my $hi = $lo + 1 < @v ? $lo + 1 : $lo;
    return $v[$lo] + ($v[$hi] - $v[$lo]) * ($i - $lo);
}

sub mean {
    my @v = @_;
    return undef unless @v;
    my $s = 0;
    $s += $_ for @v;
    return $s / @v;
}

# ---------------------------------------------------------------- bodies

# The responses of a healthy signed-in session, from the captures.
our %WORKLOAD = (
    html   => { capture => 'owa-signed-in', file => 'owa-signed-in.html',
                path => '/owa/', method => 'GET',
                what => 'OWA page, 25 KB HTML' },
    json   => { capture => 'owa-service-ok', file => 'owa-service-ok.json',
                path => '/owa/service.svc?action=GetMailboxRegionalConfiguration',
                method => 'POST', body => '{"__type":"GetMailboxRegionalConfigurationRequest:#Exchange","Header":{"__type":"JsonRequestHeaders:#Exchange","RequestServerVersion":"Exchange2013"}}',
                what => 'OWA JSON service call, 493 B' },
    script => { capture => 'owa-script', file => 'boot.worker.js',
                path => '/owa/prem/15.1.2507.6/scripts/boot.worker.js',
                method => 'GET', repeat_to => 300 * 1024,
                what => 'OWA script, 300 KB JavaScript' },
);

# not one of the throughput workloads: the same page from a server that
# sends its header and first bytes, and the rest 50 ms later (the
# harness's Perl back ends, see streamed_farm)
$WORKLOAD{streamed} = { %{ $WORKLOAD{html} }, path => '/owa/streamed/',
                        what => 'OWA page, 25 KB HTML, the rest 50 ms after the first 2000 bytes' };
$WORKLOAD{'streamed-unbuffered'} = { %{ $WORKLOAD{streamed} }, path => '/owa/streamed-unbuffered/',
                                     what => 'the same, proxy_buffering off (as docs/example.conf)' };

# Two of the harness's back ends (EH::Farm) answering /owa/streamed/ so.
sub streamed_farm {
    require EH::Farm;
    my $farm = EH::Farm->new(n => 2);
    $_->prepend({ path => '^/owa/streamed', capture => 'owa-signed-in',
                  split => [2000], split_pause => 0.05 }) for $farm->servers;
    return $farm;
}

our @WORKLOADS = qw(html json script);
sub workloads { [@WORKLOADS] }

# Header names nginx writes itself or that describe the body framing.
my %OWN_HEADER = map { lc $_ => 1 } qw(Content-Length Content-Type Date
    Server Transfer-Encoding Connection Accept-Ranges Last-Modified ETag
    Content-Encoding Vary);

sub _subst {
    my ($s, $vars) = @_;
    $s =~ s/\{\{([A-Z_]+)\}\}/exists $vars->{$1} ? $vars->{$1} : croak "no value for {{$1}}"/ge;
    return $s;
}

sub _vars {
    my ($name) = @_;
    return { FESERVER => $name, BESERVER => $name,
             FQDN => lc($name) . '.contoso.local' };
}

# nginx string literal in double quotes
sub _q {
    my ($s) = @_;
    croak "a '\$' in \"$s\" would be an nginx variable" if $s =~ /\$/;
    $s =~ s/(["\\])/\\$1/g;
    return qq{"$s"};
}

# add_header lines for a capture's headers, for server $name
sub capture_headers {
    my ($capture, $name, %o) = @_;
    my $c = EH::Capture->load($capture);
    my @lines;
    for my $h (@{ $c->headers }) {
        my ($k, $v) = @$h;
        next if $OWN_HEADER{lc $k} || (lc $k eq 'location');
        push @lines, sprintf 'add_header %s %s%s;', $k, _q(_subst($v, _vars($name))),
            $o{always} ? ' always' : '';
    }
    return @lines;
}

sub content_type {
    my ($capture) = @_;
    return EH::Capture->load($capture)->header('Content-Type');
}

# Writes the bodies into $dir; returns { workload => [file, bytes] }
sub write_bodies {
    my ($dir) = @_;
    make_path($dir);
    my %out;
    for my $w (@WORKLOADS) {
        my $spec = $WORKLOAD{$w};
        my $c = EH::Capture->load($spec->{capture});
        my $body = $c->decoded_body;
        croak "$spec->{capture}: the body has placeholders" if $body =~ /\{\{[A-Z_]+\}\}/;
        if ($spec->{repeat_to}) {
            my $one = $body;
            $body .= "\n" . $one while length $body < $spec->{repeat_to};
        }
        spew("$dir/$spec->{file}", $body);
        $out{$w} = ["$dir/$spec->{file}", length $body];
    }
    return \%out;
}

# ---------------------------------------------------------------- nginx

# EH::Nginx with a free choice of worker_connections and the main
# context lines this needs (the harness writes 1024).
package Bench::Nginx;
our @ISA = ('EH::Nginx');

sub new {
    my ($class, %o) = @_;
    my $wc = delete $o{worker_connections} // 4096;
    my $self = EH::Nginx::new($class, %o);
    $self->{worker_connections} = $wc;
    return $self;
}

sub config_text {
    my ($self, @a) = @_;
    my $t = $self->SUPER::config_text(@a);
    $t =~ s/worker_connections 1024;/worker_connections $self->{worker_connections};/;
    return $t;
}

package Bench;

# The simulated Exchange farm: one plain nginx (no module), a server
# block per Exchange server, each on an HTTP and an HTTPS port.
#
#   my $b = Bench::backends(names => [qw(EXCH1 EXCH2 EXCH3)],
#                           breakable => ['EXCH2'], workers => 1);
#   $b->{ports}{EXCH1}{http}, {https}; $b->break('EXCH2'); $b->heal('EXCH2');
#   $b->{ng} (Bench::Nginx); $b->log_file('EXCH2') with log => 1
sub backends {
    my (%o) = @_;
    my @names = @{ $o{names} || [qw(EXCH1 EXCH2 EXCH3)] };
    my %breakable = map { $_ => 1 } @{ $o{breakable} || [] };
    my $dir = run_dir() . '/bodies';
    my $bodies = write_bodies($dir);

    my $cert = EH::Cert::make(cn => 'mail.contoso.local', key_type => 'rsa',
        san => ['DNS:mail.contoso.local', (map { 'DNS:' . lc($_) . '.contoso.local' } @names),
                'IP:127.0.0.1']);

    my $self = bless { names => \@names, dir => $dir, bodies => $bodies,
                       cert => $cert }, 'Bench::Backends';

    my @servers;
    for my $name (@names) {
        my $flag = "{{PREFIX}}/broken-$name";
        my $broken = $breakable{$name};
        my $log = $o{log} && $broken
            ? "access_log {{PREFIX}}/logs/$name.log bench_backend;" : 'access_log off;';

        my $owa_broken = !$broken ? '' : join "\n            ",
            "if (-f $flag) {",
            "    return 302 " . _q(_subst(EH::Capture->load('errorfe-redirect')->header('Location'), _vars($name))) . ';',
            (map { "    $_" } capture_headers('errorfe-redirect', $name, always => 1)),
            '}';
        my $svc = EH::Capture->load('owa-service-500');
        my $svc_broken = !$broken ? '' : join "\n            ",
            "if (-f $flag) {",
            '    return 500 ' . _q(_subst($svc->body, _vars($name))) . ';',
            (map { "    $_" } capture_headers('owa-service-500', $name, always => 1)),
            '}';

        my $server = <<"SRV";
    server {
        listen 127.0.0.1:{{PORT_${name}}} backlog=4096;
        listen 127.0.0.1:{{PORT_${name}S}} ssl backlog=4096;
        ssl_certificate     $cert->{cert};
        ssl_certificate_key $cert->{key};
        $log

        root $dir;

        location = /owa/ {
            $owa_broken
            types { }
            default_type ${\ _q(content_type('owa-signed-in'))};
            ${\ join "\n            ", capture_headers('owa-signed-in', $name)}
            try_files /$WORKLOAD{html}{file} =404;
        }

        location = /owa/service.svc {
            $svc_broken
            types { }
            default_type ${\ _q(content_type('owa-service-ok'))};
            ${\ join "\n            ", capture_headers('owa-service-ok', $name)}
            # OWA posts its service calls: a POST gets the file too
            alias $dir/$WORKLOAD{json}{file};
            error_page 405 =200 /owa/service.svc;
        }

        location /owa/prem/ {
            types { }
            default_type ${\ _q(content_type('owa-script'))};
            ${\ join "\n            ", capture_headers('owa-script', $name)}
            try_files /$WORKLOAD{script}{file} =404;
        }

        location = /owa/healthcheck.htm {
            default_type text/html;
            return 200 "200 OK<br/>${\ lc $name}.contoso.local";
        }
    }
SRV
        push @servers, $server;
    }

    my $ng = Bench::Nginx->new(
        module => 0, access_log => 0, check => 0,
        worker_processes => $o{workers} // 1,
        worker_connections => 8192,
        main => 'worker_rlimit_nofile 20000;',
        error_log_level => 'error',
        http => join("\n", <<'HTTP', @servers));
    log_format bench_backend '$msec $status $request_method $request_uri $connection';
    access_log off;
    server_tokens off;
    absolute_redirect off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
HTTP
    $ng->start;
    $self->{ng} = $ng;
    for my $name (@names) {
        $self->{ports}{$name} = { http => $ng->port($name), https => $ng->port("${name}S") };
    }
    return $self;
}

package Bench::Backends;

sub ng { $_[0]{ng} }
sub names { @{ $_[0]{names} } }
sub port { $_[0]{ports}{$_[1]}{ $_[2] // 'http' } }
sub addr { '127.0.0.1:' . $_[0]->port($_[1], $_[2]) }
sub flag { $_[0]{ng}->prefix . "/broken-$_[1]" }
sub break { EH::Util::spew($_[0]->flag($_[1]), "broken\n") }
sub heal { unlink $_[0]->flag($_[1]) }
sub is_broken { -e $_[0]->flag($_[1]) }
sub log_file { $_[0]{ng}->prefix . "/logs/$_[1].log" }
sub worker_pids { $_[0]{ng}->worker_pids }

# Entries of a server's request log: [msec, status, method, uri, conn]
sub log_entries {
    my ($self, $name, %o) = @_;
    my $f = $self->log_file($name);
    open my $fh, '<', $f or return ();
    seek $fh, $o{from} // 0, 0;
    my @e;
    while (<$fh>) {
        my @f = split ' ';
        push @e, \@f if @f >= 5;
    }
    return @e;
}

sub log_size { (-s $_[0]->log_file($_[1])) || 0 }

# upstream block text: "server ..." lines for a scheme
sub server_lines {
    my ($self, $scheme) = @_;
    return join "\n", map { "        server " . $self->addr($_, $scheme) . ";   # $_" }
        $self->names;
}

package Bench;

# The front end: the module's configuration, or the same without it.
#
#   my $ng = Bench::front($backends, module => 1, workers => 1,
#       eject => 'time=5s', location => '...', status => 1, access_log => 1);
#   listen ports: {{PORT}} proxies to the HTTP back ends, {{PORT_TLS}} to
#   the HTTPS ones; with status_port => 1, {{PORT_STATUS}} has only the
#   status page and /ping (the helpdesk's own port).
#   multi_accept => 1: "multi_accept on" in events.
sub front {
    my ($b, %o) = @_;
    my $module = $o{module};
    my $zone = $module ? "exchange_health_zone exchange 1m;" : '';
    my $balancer = $module
        ? join("\n        ", 'exchange_health zone=exchange;',
               ($o{eject} ? "exchange_health_eject $o{eject};" : ()))
        : '# plain round robin';
    my $status = $module && $o{status}
        ? "location = /status { exchange_health_status; }" : '';
    # an answer nginx makes itself, to tell a slow status page from a busy nginx
    $status .= "\n        location = /ping { return 200 \"pong\\n\"; }";
    my $location = $o{location} // '';
    my $log = $o{access_log}
        ? 'access_log {{PREFIX}}/logs/front.log bench_front buffer=64k flush=1s;'
        : 'access_log off;';
    my $verdict = $module ? '$exchange_health_verdict' : '-';
    my $rlimit = $o{rlimit} ? "worker_rlimit_nofile $o{rlimit};" : '';
    my $http_servers = $b->server_lines('http');
    my ($streamed_up, $streamed_loc) = ('', '');
    if ($o{streamed}) {
        $streamed_up = join "\n", 'upstream exchange_streamed {',
            (map { '        server ' . $_->addr . ';' } $o{streamed}->servers),
            "        $balancer", '        keepalive 32;', '    }';
        for my $buffering ('', 'proxy_buffering off;') {
            $streamed_loc .= join "\n        ",
                'location /owa/streamed' . ($buffering ? '-unbuffered' : '') . '/ {',
                '    proxy_pass http://exchange_streamed;',
                '    proxy_http_version 1.1;',
                '    proxy_set_header Connection "";', "    $location", "    $buffering", '}', '';
        }
    }
    my $https_servers = $b->server_lines('https');

    my %args = (
        module => $module ? EH::Nginx::module_path() : 0,
        access_log => 0, check => 0,
        worker_processes => $o{workers} // 1,
        worker_connections => $o{worker_connections} // 4096,
        error_log_level => $o{error_log_level} // 'warn',
        main => $rlimit,
        http => <<"CONF");
    $zone
    log_format bench_front '\$msec \$status "\$upstream_addr" "\$upstream_status" '
                           '$verdict \$request_time \$pid \$request_method \$uri';
    $log
    keepalive_requests 1000000;
    keepalive_timeout 300s;

    upstream exchange {
$http_servers
        $balancer
        keepalive 32;
    }

    $streamed_up

    upstream exchange_tls {
$https_servers
        $balancer
        keepalive 32;
    }

    server {
        listen 127.0.0.1:{{PORT}} backlog=4096;
        $status
        $streamed_loc
        location / {
            proxy_pass http://exchange;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $location
        }
    }

    server {
        listen 127.0.0.1:{{PORT_TLS}} backlog=4096;
        $status
        location / {
            proxy_pass https://exchange_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify off;
            proxy_ssl_session_reuse on;
            $location
        }
    }
CONF
    if ($o{status_port}) {
        my $only = $module ? 'location = /status { exchange_health_status; }' : '';
        $args{http} .= <<"CONF";

    server {
        listen 127.0.0.1:{{PORT_STATUS}};
        $only
        location = /ping { return 200 "pong\\n"; }
    }
CONF
    }
    $args{events} = 'multi_accept on;' if $o{multi_accept};
    my $ng = Bench::Nginx->new(%args);
    $ng->start;
    return $ng;
}

# HAProxy in front of the same back ends, as a peer (EH::Haproxy): one
# thread, keep-alive to the back ends, round robin; lua => 1 adds the
# do-it-yourself reading of answers (bench/haproxy-exchange.lua after
# "http-response wait-for-body").  No health checks: they cost nothing
# per request.  undef when HAProxy is not installed.
sub haproxy {
    my ($b, %o) = @_;
    require EH::Haproxy;
    return undef unless EH::Haproxy::available();
    my $lua_file = repo_root() . "/bench/haproxy-exchange.lua";
    my ($lua_load, $judge) = ('', '');
    if ($o{lua}) {
        $lua_load = "    lua-load $lua_file";
        $judge = <<'J';
    http-response wait-for-body time 1s at-least 4k if { res.hdr(content-type) -m beg text/html }
    http-response lua.exchange_judge
J
    }
    my $servers = sub {
        my ($scheme) = @_;
        my $ssl = $scheme eq 'https' ? ' ssl verify none' : '';
        return join '', map { "    server $_ " . $b->addr($_, $scheme) . "$ssl\n" }
                        $b->names;
    };
    my $hp = EH::Haproxy->new(config => <<"CONF");
global
    nbthread 1
    maxconn 4096
    stats socket {{SOCK}} level admin
$lua_load

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 60s
    timeout http-keep-alive 300s

frontend http_to_http
    bind 127.0.0.1:{{PORT}}
    default_backend exchange

frontend http_to_https
    bind 127.0.0.1:{{PORT_TLS}}
    default_backend exchange_tls

backend exchange
    balance roundrobin
$judge@{[ $servers->('http') ]}
backend exchange_tls
    balance roundrobin
$judge@{[ $servers->('https') ]}
CONF
    $hp->start;
    return $hp;
}

# port of a front for a transport to the back ends ('http' / 'https')
sub front_port {
    my ($ng, $transport) = @_;
    return $transport eq 'https' ? $ng->port('TLS') : $ng->port;
}

# ---------------------------------------------------------------- wrk

# A Lua script for wrk: the requests of one workload (or 'mix': of ten
# requests 7 JSON calls, 2 pages, 1 script), signed in.  users => N: cadata cookies of N users in
# turn (default: one user, cadata=x).
sub wrk_script {
    my (%o) = @_;
    my $w = $o{workload};
    my $users = $o{users} // 1;
    # a signed-in session's mix: mostly service calls, some pages, a script
    my @kinds = $w eq 'mix' ? qw(json html json json script json html json json json) : ($w);
    my $lua = "-- generated by bench/lib/Bench.pm\n";
    $lua .= "local reqs = {}\n";
    for my $i (0 .. $users - 1) {
        my $cookie = $users == 1 ? 'cadata=x' : "cadata=user$i";
        for my $k (@kinds) {
            my $s = $WORKLOAD{$k};
            my $body = $s->{body} // '';
            $lua .= sprintf "reqs[#reqs + 1] = wrk.format(%s, %s, { [\"Host\"] = \"mail.contoso.com\", [\"Cookie\"] = %s%s }, %s)\n",
                _lua($s->{method}), _lua($s->{path}), _lua($cookie),
                length $body ? ', ["Content-Type"] = "application/json; charset=utf-8"' : '',
                length $body ? _lua($body) : 'nil';
        }
    }
    $lua .= <<'LUA';
local i = 0
request = function()
    i = i + 1
    if i > #reqs then i = 1 end
    return reqs[i]
end
LUA
    my $dir = run_dir() . '/wrk';
    make_path($dir);
    my $file = "$dir/$w-$users.lua";
    spew($file, $lua);
    return $file;
}

sub _lua {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    return qq{"$s"};
}

# Runs wrk; returns { rps, requests, seconds, p50, p75, p90, p99 (ms),
# non2xx, errors{connect,read,write,timeout}, transfer, cpu (wrk's) }.
sub wrk {
    my (%o) = @_;
    my $url = $o{url} // croak "wrk: url";
    my @cmd = ('wrk', '-t', $o{threads} // 1, '-c', $o{connections} // 32,
               '-d', ($o{seconds} // 10) . 's', '--latency',
               '--timeout', ($o{timeout} // 10) . 's',
               '-s', $o{script}, $url);
    my @t0 = times;
    my $pid = open my $fh, '-|';
    croak "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $o{started}->($pid) if $o{started};
    local $/;
    my $out = <$fh> // '';
    close $fh;
    my @t1 = times;
    my $r = parse_wrk($out);
    @$r{qw(out cmd exit cpu)} = ($out, "@cmd", $? >> 8,
                                 ($t1[2] - $t0[2]) + ($t1[3] - $t0[3]));
    croak "wrk failed: @cmd\n$out" unless defined $r->{rps} && $r->{requests};
    return $r;
}

# wrk's report as { requests, seconds, rps, p50, p75, p90, p99 (ms),
# non2xx, errors{connect,read,write,timeout}, transfer }
sub parse_wrk {
    my ($out) = @_;
    my %r;
    if ($out =~ /(\d+) requests in ([\d.]+)(ms|s|m)/) {
        $r{requests} = $1;
        $r{seconds} = $3 eq 'ms' ? $2 / 1000 : $3 eq 'm' ? $2 * 60 : $2;
    }
    ($r{rps}) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    for my $p (50, 75, 90, 99) {
        $r{"p$p"} = _ms($1, $2) if $out =~ /^\s+$p%\s+([\d.]+)(us|ms|s|m)\s*$/m;
    }
    ($r{non2xx}) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
    $r{non2xx} //= 0;
    if ($out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
        @{ $r{errors} }{qw(connect read write timeout)} = ($1, $2, $3, $4);
    }
    else {
        @{ $r{errors} }{qw(connect read write timeout)} = (0, 0, 0, 0);
    }
    ($r{transfer}) = $out =~ /Transfer\/sec:\s+(\S+)/;
    return \%r;
}

sub _ms {
    my ($v, $u) = @_;
    return $u eq 'us' ? $v / 1000 : $u eq 'ms' ? $v : $u eq 's' ? $v * 1000 : $v * 60000;
}

# ---------------------------------------------------------------- ttfb

# Sequential requests on one keep-alive connection: for each, the time
# from sending the request to the first byte of the answer, and to its
# last byte.  Returns ([ttfb seconds], [total seconds]).
sub ttfb {
    my (%o) = @_;
    my $port = $o{port};
    my $n = $o{n} // 100;
    my $spec = $WORKLOAD{ $o{workload} // 'html' };
    my $body = $spec->{body} // '';
    my $req = "$spec->{method} $spec->{path} HTTP/1.1\r\nHost: mail.contoso.com\r\n"
        . "Cookie: cadata=x\r\nUser-Agent: bench-ttfb\r\n"
        . (length $body ? "Content-Type: application/json\r\nContent-Length: "
           . length($body) . "\r\n" : '')
        . "\r\n$body";
    my $sock = $o{sock};
    my (@first, @total);
    for (1 .. $n) {
        $sock ||= IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                        Proto => 'tcp', Timeout => 10)
            or croak "ttfb: connect to $port: $!";
        setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
        my $t0 = time;
        syswrite($sock, $req) == length $req or croak "ttfb: write: $!";
        my $buf = '';
        my $got = sysread($sock, $buf, 65536);
        my $t1 = time;
        croak "ttfb: connection closed" unless $got;
        my $hend;
        until (($hend = index $buf, "\r\n\r\n") >= 0) {
            sysread($sock, $buf, 65536, length $buf) or croak "ttfb: closed in header";
        }
        my ($len) = substr($buf, 0, $hend) =~ /\r\nContent-Length:\s*(\d+)/i;
        croak "ttfb: no Content-Length in\n" . substr($buf, 0, $hend) unless defined $len;
        my $want = $hend + 4 + $len;
        while (length $buf < $want) {
            sysread($sock, $buf, 262144, length $buf) or croak "ttfb: closed in body";
        }
        my $t2 = time;
        croak "ttfb: status " . substr($buf, 0, 12) unless $buf =~ m{\AHTTP/1\.1 200 };
        push @first, $t1 - $t0;
        push @total, $t2 - $t0;
    }
    return (\@first, \@total, $sock);
}

# ---------------------------------------------------------------- status

# GET the status page as JSON on a keep-alive connection; returns
# ($decoded or undef, $error, $seconds).
sub status_json {
    my ($client, %o) = @_;
    require JSON::PP;
    my $t0 = time;
    # by address, as a scraper that knows the node by its IP: the status
    # location answers only a Host its server block serves
    my $r = $client->request(GET => ($o{path} // '/status') . '?format=json',
                             host => '127.0.0.1', timeout => $o{timeout} // 5);
    my $dt = time - $t0;
    return (undef, $r->{error} // 'no answer', $dt) unless defined $r->{status};
    return (undef, "status $r->{status}", $dt) unless $r->{status} == 200;
    my $j = eval { JSON::PP->new->utf8->decode($r->{body} // '') };
    return (undef, "JSON: " . ($@ || 'empty'), $dt) unless $j;
    return ($j, undef, $dt);
}

# { "upstream/server/protocol" => slot hash } from a decoded status page
sub status_slots {
    my ($j) = @_;
    my %s;
    for my $up (@{ $j->{upstreams} || [] }) {
        for my $srv (@{ $up->{servers} || [] }) {
            my $name = length($srv->{name} // '') ? $srv->{name} : $srv->{address};
            for my $p (keys %{ $srv->{protocols} || {} }) {
                $s{"$up->{name}/$name/$p"} = $srv->{protocols}{$p};
            }
        }
    }
    return \%s;
}

1;
