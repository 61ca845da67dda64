package EH::Haproxy;

# HAProxy in front of the harness's farm, as a peer the module is
# measured against (bench/real-traffic, bench/run): Debian's haproxy
# package, one thread to match one nginx worker, in its own directory.
#
#   my $hp = EH::Haproxy->new(farm => $farm, backend => '...lines...');
#   $hp->start;
#   my $r = $hp->request(GET => '/owa/', signed_in => 'alice');
#   my @down = $hp->down;           # servers HAProxy has marked down
#   $hp->stop;
#
# Not part of make test: the tests need no HAProxy.  available() says
# whether it is installed.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use IO::Socket::UNIX;
use POSIX ();
use Time::HiRes qw(sleep);

use EH::Client;
use EH::Util qw(run_dir free_port spew wait_until);

my $SEQ = 0;

sub binary { $ENV{EH_HAPROXY} // '/usr/sbin/haproxy' }

sub available { -x binary() }

# The best practice for an Exchange farm without a module that reads
# answers: a health check of each protocol's healthcheck.htm, passive
# observation of answers (layer 7 errors mark a server down), and retries
# of the failures HAProxy can see, as nginx's proxy_next_upstream does.
sub best_practice {
    return <<'CONF';
    balance roundrobin
    option httpchk GET /owa/healthcheck.htm
    http-check expect status 200
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 500 502 503 504
    default-server check inter 2s fall 2 rise 2 observe layer7 error-limit 10 on-error mark-down
CONF
}

# new(farm => $farm, backend => lines (default best_practice),
#     global => lines, frontend => lines, lua => file to lua-load)
# new(config => text): a whole configuration of one's own, where
#     {{PORT}}, {{PORT_NAME}}, {{DIR}} and {{SOCK}} are replaced
sub new {
    my ($class, %o) = @_;
    croak 'EH::Haproxy->new: farm => or config => is required'
        unless $o{farm} || $o{config};
    my $id = ++$SEQ;
    my $dir = run_dir() . "/haproxy-$id";
    make_path($dir);
    my $self = bless { %o, id => $id, dir => $dir, ports => {},
                       conf => "$dir/haproxy.cfg", sock => "$dir/admin.sock",
                       pid => undef }, $class;
    $self->{port} = $self->port;
    my $text = $o{config} // $self->config_text;
    $text =~ s/\{\{PORT_([A-Za-z0-9_]+)\}\}/$self->port($1)/ge;
    $text =~ s/\{\{PORT\}\}/$self->{port}/g;
    $text =~ s/\{\{DIR\}\}/$dir/g;
    $text =~ s/\{\{SOCK\}\}/$self->{sock}/g;
    spew($self->{conf}, $text);
    return $self;
}

# $hp->port: the main port; $hp->port('TLS'): {{PORT_TLS}}
sub port {
    my ($self, $name) = @_;
    return $self->{ports}{ $name // '' } //= free_port();
}

sub pid  { $_[0]{pid} }
sub dir  { $_[0]{dir} }

# for the benchmarks' CPU readings: one process, one thread
sub worker_pids { $_[0]{pid} ? ($_[0]{pid}) : () }

sub config_text {
    my ($self) = @_;
    my $farm = $self->{farm};
    my $ssl = $farm->scheme eq 'https' ? ' ssl verify none' : '';
    my $servers = join '', map {
        '    server ' . $_ . ' ' . $farm->server($_)->addr . "$ssl\n"
    } $farm->names;
    my $lua = $self->{lua} ? "    lua-load $self->{lua}\n" : '';
    return <<"CONF";
global
    nbthread 1
    maxconn 4096
    stats socket $self->{sock} level admin
    tune.ssl.default-dh-param 2048
$lua@{[ $self->{global} // '' ]}
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s

frontend owa
    bind 127.0.0.1:$self->{port}
@{[ $self->{frontend} // '' ]}
    default_backend exchange

backend exchange
@{[ $self->{backend} // best_practice() ]}$servers
CONF
}

sub start {
    my ($self) = @_;
    my $out = "$self->{dir}/stderr.log";
    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        { exec binary(), '-db', '-f', $self->{conf} };
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    my $up = wait_until(sub {
        return 0 if waitpid($pid, POSIX::WNOHANG()) == $pid;
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}");
        return $s ? 1 : 0;
    }, timeout => 10);
    croak "haproxy did not start: " . (EH::Util::slurp($out) // '') unless $up;
    return $self;
}

sub stop {
    my ($self, %o) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    for (1 .. 100) {
        return if waitpid($pid, POSIX::WNOHANG()) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

sub DESTROY { $_[0]->stop if $_[0]{pid} && EH::Util::in_creator() }

sub request {
    my ($self, $method, $path, %o) = @_;
    return EH::Client->request($method, $path, port => $self->{port}, %o);
}

# One command on the admin socket; its answer.
sub admin {
    my ($self, $cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $self->{sock}) or return '';
    print $s "$cmd\n";
    local $/;
    my $answer = <$s>;
    return $answer // '';
}

# Names of the servers HAProxy has marked down (by check or observation).
sub down {
    my ($self) = @_;
    my @down;
    for (split /\n/, $self->admin('show stat')) {
        my @f = split /,/;
        next unless @f > 17 && $f[0] eq 'exchange';
        next if $f[1] eq 'BACKEND' || $f[1] eq 'FRONTEND';
        push @down, $f[1] if $f[17] =~ /^DOWN|^MAINT/;
    }
    return sort @down;
}

1;
