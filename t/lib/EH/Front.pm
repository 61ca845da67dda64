package EH::Front;

# The module in front of a farm: the configuration most tests use, and
# readers for what the module writes (verdict log, state-change lines).
#
#   my $farm = farm(tls => 1);
#   my $ng = EH::Front::nginx($farm, upstream => 'exchange_health_eject time=1s;',
#                             location => 'exchange_health_retry off;');
#   $ng->start;
#   my @v = EH::Front::verdicts($ng);          # one hash per request
#   my @e = EH::Front::changes($ng, 'ejected'); # state-change log lines
#   my ($j) = EH::Front::status_json($ng);     # the status page, decoded
#   my $u = EH::Front::worker_usage($ng);      # { pid, rss_kb, cpu }

use strict;
use warnings;

use EH::Nginx ();
use EH::Util ();

# EH::Front::nginx($farm, %o) -> EH::Nginx (not started)
#   upstream => lines inside upstream {} after "exchange_health ..."
#   balancer => the exchange_health line (default "exchange_health zone=exchange;")
#   location => lines inside "location /"
#   http     => lines at http level
#   server   => lines at server level
#   params   => per-server parameters, as EH::Farm::upstream_block
#   before   => lines before the server lines (the upstream "zone")
#   zone     => zone size (default 1m)
#   server_name => the front end's names (default mail.contoso.com, the
#               Host EH::Client sends; '' for none): the status location
#               answers only a Host the server block serves
#   any other option goes to EH::Nginx->new
sub nginx {
    my ($farm, %o) = @_;

    my $balancer = delete $o{balancer} // 'exchange_health zone=exchange;';
    my $upstream = $farm->upstream_block('exchange',
        extra  => join("\n", grep { length } $balancer, delete $o{upstream} // ''),
        params => delete $o{params} // {},
        before => delete $o{before},
        (exists $o{servers} ? (servers => delete $o{servers}) : ()));
    my $zone = delete $o{zone} // '1m';
    my $http = delete $o{http} // '';
    my $server = delete $o{server} // '';
    my $location = delete $o{location} // '';
    my $names = delete $o{server_name} // 'mail.contoso.com';
    my $server_name = length $names ? "server_name $names;" : '';
    my $scheme = $farm->scheme;

    return EH::Nginx->new(%o, http => <<"CONF");
exchange_health_zone exchange $zone;

$upstream

log_format eh_verdict '\$request_method \$uri \$status "\$upstream_addr" '
                      '"\$upstream_status" \$exchange_health_verdict '
                      '\$exchange_health_server \$exchange_health_protocol '
                      '\$pid';
access_log {{PREFIX}}/logs/verdict.log eh_verdict;

$http

server {
    listen 127.0.0.1:{{PORT}};
    $server_name
    $server

    location / {
        proxy_pass $scheme://exchange;
        proxy_ssl_verify off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        $location
    }
}
CONF
}

# docs/example.conf as it runs here: only what cannot exist here is
# replaced, line by line (the module path, the back ends' addresses, the
# listen ports, the certificates, the log and state paths).
#   text    => the configuration (default docs/example.conf)
#   servers => [ addresses of EXCH1, EXCH2, EXCH3 ]
#   ports   => { http => N, https => N, prefix => dir }, or {{PORT...}}
#   cert    => the certificate nginx and the servers present (EH::Cert)
#   ca      => the CA proxy_ssl_trusted_certificate names (EH::Cert)
sub example_conf {
    my (%o) = @_;
    require EH::Util;
    my $text = $o{text}
        // EH::Util::slurp(EH::Util::repo_root() . '/docs/example.conf');
    my $module = EH::Nginx::module_path();
    my ($ports, $mail, $ca) = @o{qw(ports cert ca)};
    my %addr;
    @addr{qw(10.0.0.11 10.0.0.12 10.0.0.13)} = @{ $o{servers} };
    my @out;
    for my $l (split /\n/, $text, -1) {
        # a static build (EH_MODULE=static) has the module built in
        $l =~ s{^load_module \S+;}{$module ? "load_module $module;" : ''}e;
        $l =~ s{\b(10\.0\.0\.1[123]):443\b}{$addr{$1} // die "no server for $1"}e;
        $l =~ s{^(\s*)listen 80;}{${1}listen 127.0.0.1:$ports->{http};};
        $l =~ s{^(\s*)listen 443 ssl;}{${1}listen 127.0.0.1:$ports->{https} ssl;};
        $l =~ s{^(\s*ssl_certificate\s+)/etc/nginx/ssl/mail\.contoso\.com\.crt;}{$1$mail->{cert};};
        $l =~ s{^(\s*ssl_certificate_key\s+)/etc/nginx/ssl/mail\.contoso\.com\.key;}{$1$mail->{key};};
        $l =~ s{^(\s*proxy_ssl_trusted_certificate\s+)/etc/nginx/ssl/contoso-ca\.pem;}{$1$ca->{cert};};
        $l =~ s{^(\s*access_log\s+)/var/log/nginx/exchange\.log( exchange;)}{$1$ports->{prefix}/logs/exchange.log$2};
        $l =~ s{^(\s*error_log\s+)/var/log/nginx/error\.log( warn;)}{$1$ports->{prefix}/logs/error.log$2};
        $l =~ s{^(\s*state=)/var/lib/nginx/exchange-health/exchange\.state;}{$1$ports->{prefix}/exchange.state;};
        push @out, $l;
    }
    return join "\n", @out;
}

# The http {} block of example_conf, to run with EH::Nginx (which writes
# the main context and events itself): (http block text, main, events).
sub example_http {
    my (%o) = @_;
    my $adapted = example_conf(%o, ports => { http => '{{PORT_HTTP}}',
                                              https => '{{PORT}}',
                                              prefix => '{{PREFIX}}' });
    my ($main, $events, $http) = $adapted =~
        /\A(.*?)^events\s*\{(.*?)^\}\s*^http\s*\{\n(.*)^\}\s*\z/ms
        or die "docs/example.conf: no events {} and http {} blocks\n";
    return ($http, $main, $events);
}

# One hash per logged request: method uri status upstream_addr
# upstream_status verdict server protocol pid.
sub verdicts {
    my ($ng) = @_;
    my $file = $ng->prefix . '/logs/verdict.log';
    return () unless -e $file;
    open my $fh, '<', $file or die "$file: $!";
    my @v;
    while (<$fh>) {
        chomp;
        my @f = /^(\S+) (\S+) (\d+) "([^"]*)" "([^"]*)" (\S+) (\S+) (\S+) (\d+)$/
            or next;
        my %h;
        @h{qw(method uri status upstream_addr upstream_status verdict
              server protocol pid)} = @f;
        push @v, \%h;
    }
    return @v;
}

# Wait until the verdict log has at least $n lines (logging follows the
# response, so a test reading it right away may be early).
sub wait_verdicts {
    my ($ng, $n) = @_;
    my @v;
    EH::Util::wait_until(sub { (@v = verdicts($ng)) >= $n }, timeout => 5);
    return @v;
}

# State-change lines the module logged at warn:
#   ejected, trial, trial-failed, readmitted, farm-fault, farm-cleared
# Each: { line, server (Exchange name), addr, protocol, rule }.
my %CHANGE = (
    'ejected'      => qr/server (\S+) \((\S+)\) ejected for (.+?) for \S+ after .*rule "([^"]+)"/,
    'trial'        => qr/server (\S+) \((\S+)\) on trial for (.+?) with/,
    'trial-failed' => qr/server (\S+) \((\S+)\) failed its trial for (.+?), .*rule "([^"]+)"/,
    'readmitted'   => qr/server (\S+) \((\S+)\) re-admitted for (.+?) after/,
    'farm-fault'   => qr/farm-wide fault for (.+?), not ejecting .*rule "([^"]+)" on \S+ \S+ from server (\S+) \((\S+)\)/,
    'farm-cleared' => qr/farm-wide fault for (.+?) cleared by a good answer from server (\S+) \((\S+)\)/,
);

sub changes {
    my ($ng, $what, %o) = @_;
    my $re = $CHANGE{$what} or die "EH::Front::changes: unknown '$what'";
    my $text = defined $o{since} ? $ng->error_log_since($o{since}) : $ng->error_log;
    my @c;
    my @fields = $what eq 'farm-fault'   ? qw(protocol rule addr server)
               : $what eq 'farm-cleared' ? qw(protocol addr server)
               :                           qw(addr server protocol rule);
    for my $line (split /\n/, $text) {
        next unless $line =~ /\[warn\].*exchange_health: /;
        my @m = $line =~ $re or next;
        my %c = (line => $line);
        @c{@fields} = @m;
        push @c, \%c;
    }
    return @c;
}

# The status page as JSON (the front end needs "location = /status
# { exchange_health_status; }", EH::Front::nginx(server => ...)):
# (decoded page or undef, the response, the decode error).
sub status_json {
    my ($ng, %o) = @_;
    require JSON::PP;
    my $r = $ng->request(GET => ($o{path} // '/status') . '?format=json',
                         timeout => $o{timeout} // 5);
    my $j = eval { JSON::PP->new->utf8->decode($r->{body} // '') };
    return ($j, $r, $j ? undef : ($@ || 'no body'));
}

# A front end whose signed-in probes run every $o{interval} seconds
# (two workers, debug log, a state file, the status page): the plain
# probe of $o{probe} (owa), then exchange_health_probe_signin $o{signin};
# $o{tls} is added to the probe's line.  The rest as for nginx().
sub signin_nginx {
    my ($farm, %o) = @_;
    my $interval = delete $o{interval};
    my $probe = delete $o{probe} // 'owa';
    my $tls = delete $o{tls} // '';
    my $signin = delete $o{signin};
    return nginx($farm, worker_processes => 2,
        error_log_level => 'debug',
        zone => '1m state={{PREFIX}}/exchange.state',
        upstream => "exchange_health_eject time=3s;\n"
                  . "exchange_health_probe interval=${interval}s timeout=1s "
                  . "sni=mail.contoso.com protocols=$probe fails=2 $tls;\n"
                  . "exchange_health_probe_signin $signin;",
        server => 'location = /status { exchange_health_status; }',
        %o);
}

# A credentials file of exchange_health_probe_signin in the test's
# directory, mode 0600 unless told: its path.
sub cred_file {
    my ($name, $text, $mode) = @_;
    my $f = EH::Util::run_dir() . "/$name";
    EH::Util::spew($f, $text);
    chmod $mode // 0600, $f;
    return $f;
}

# What the signed-in probe of the server at $addr last found for
# protocol $p, from the status page's JSON: {} when nothing yet.
sub signin_of {
    my ($ng, $addr, $p) = @_;
    my ($j) = status_json($ng);
    my ($s) = $j ? grep { $_->{address} eq $addr } @{ $j->{upstreams}[0]{servers} }
                 : ();
    return ($s && $s->{protocols}{$p}{signin}) // {};
}

# Whether the signed-in probe of every server of $farm found each
# protocol of @p "ok"
sub signin_all_ok {
    my ($ng, $farm, @p) = @_;
    return scalar($farm->names) == grep {
               my $addr = $farm->server($_)->addr;
               @p == grep { (signin_of($ng, $addr, $_)->{result} // '') eq 'ok' } @p
           } $farm->names;
}

# The requests of users, not of the probes, since $since
sub user_requests {
    my ($farm, $since) = @_;
    return grep { ($_->{headers}{'user-agent'} // '') !~ /exchange_health probe/ }
           $farm->requests(since => $since);
}

# Tests that server $name's state changed ($what: ejected, readmitted)
# for protocol $p within two intervals (and a tick) of $t0, with no user
# request meanwhile; $m: the error log's mark before
sub changed_in_time {
    my ($ng, $farm, $interval, $what, $name, $p, $m, $t0) = @_;
    require Test::More;
    require Time::HiRes;
    my $at;
    Test::More::ok(EH::Util::wait_until(sub {
            $at //= Time::HiRes::time() if grep { $_->{protocol} eq $p && $_->{server} eq $name }
                                           changes($ng, $what, since => $m);
            $at }, timeout => 4 * $interval + 4),
       "$name $what for $p");
    Test::More::cmp_ok(($at // 99) - $t0, '<=', 2 * $interval + 1.5,
           sprintf "... within two intervals and a tick (%.1f s)", ($at // 0) - $t0);
    Test::More::is(scalar(user_requests($farm, $t0)), 0,
                   '... with no user request meanwhile');
}

# Every place a secret must not be (issue 28): the status page in each
# format and nginx -T of $ng's configuration, then, $ng stopped, its
# state file and error log, and the error logs of the others named:
# (place => text).  The front end serves "location = /status" and has
# a zone with state= {{PREFIX}}/exchange.state.
sub secret_places {
    my ($ng, %others) = @_;
    my %where;
    $where{"status $_->[0]"} = $ng->request(GET => "/status$_->[1]")->{body}
        for [ HTML => '' ], [ JSON => '?format=json' ],
            [ Prometheus => '?format=prometheus' ];
    my $nginx = $ENV{EH_NGINX} // '/usr/sbin/nginx';
    $where{'nginx -T'} = `$nginx -T -p ${\ $ng->prefix}/ -c ${\ $ng->conf_file} 2>&1`;
    $ng->stop;
    $where{'state file'} = EH::Util::slurp($ng->prefix . '/exchange.state');
    $where{'error log'} = $ng->error_log;
    $where{"error log, $_"} = $others{$_}->error_log for keys %others;
    return %where;
}

# A worker's resident memory (kB) and CPU time (s) from /proc: the first
# worker unless pid => N.
sub worker_usage {
    my ($ng, %o) = @_;
    my $pid = $o{pid} // ($ng->worker_pids)[0] or return undef;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    my ($rss) = map { /^VmRSS:\s+(\d+)\s+kB/ ? $1 : () } <$fh>;
    close $fh;
    open $fh, '<', "/proc/$pid/stat" or return undef;
    my $stat = <$fh>;
    close $fh;
    $stat =~ s/^.*\)\s+//s;         # the command may contain spaces
    my @f = split ' ', $stat;       # f[0] is field 3 (state)
    require POSIX;
    my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
    return { pid => $pid, rss_kb => $rss, cpu => ($f[11] + $f[12]) / $hz };
}

1;
