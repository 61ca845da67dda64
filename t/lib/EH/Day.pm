package EH::Day;

# A day of real OWA traffic in front of the harness's farm: signed-in
# users, anonymous logon loads, stale links, users whose mailbox database
# is down, forged cookies on the errorFE page, and servers that break the
# ways Exchange servers break.  t/70-real-traffic.t runs a short day with
# assertions; bench/real-traffic runs a long one with HAProxy beside
# plain nginx.  Any front end with request(METHOD, path, %o) will do.
#
#   my $day = EH::Day->new(farm => $farm, users => 20, rounds => 3);
#   $day->set(EXCH2 => 'seed');
#   $day->forged($front);
#   my $t = $day->traffic($front);   # { failed, requests, load => {...} }
#   EH::Day::even($t->{load}, qw(EXCH1 EXCH3));

use strict;
use warnings;

use POSIX ();
use Time::HiRes qw(time sleep);

use EH::Nginx;
use EH::Front;

# The states a server of the day can be in.
our @STATES = qw(healthy seed app-pool-stopped iis-500);

# HTTP.SYS's own answer for a stopped application pool
my $HTTPSYS = "<HTML><HEAD><TITLE>Service Unavailable</TITLE></HEAD><BODY>"
            . "<h2>Service Unavailable</h2><hr><p>HTTP Error 503. The service "
            . "is unavailable.</p></BODY></HTML>\r\n";

# new(farm => $farm, users => N signed-in users, rounds => R,
#     clients => C concurrent clients per front end,
#     seconds => S to spread a phase's requests over S seconds)
sub new {
    my ($class, %o) = @_;
    return bless { users => 20, rounds => 3, clients => 1, seconds => 0, %o },
                 $class;
}

# Requests of one traffic() call that a signed-in user makes to /owa/.
sub signed_in { $_[0]{users} * $_[0]{rounds} }

# Put a server in a state; every server also answers the day's noise.
sub set {
    my ($self, $name, $state) = @_;
    my $b = $self->{farm}->server($name);

    $b->preset($state eq 'seed' ? 'seed' : 'healthy');

    if ($state eq 'app-pool-stopped') {
        $b->prepend({ name => 'httpsys', path => '^/(owa|ecp)',
            raw => "HTTP/1.1 503 Service Unavailable\r\n"
                 . "Content-Type: text/html; charset=us-ascii\r\n"
                 . "Server: Microsoft-HTTPAPI/2.0\r\nConnection: close\r\n"
                 . 'Content-Length: ' . length($HTTPSYS) . "\r\n\r\n$HTTPSYS" });
    }
    elsif ($state eq 'iis-500') {
        $b->prepend({ name => 'iis500', path => '^/(owa|ecp)',
                      capture => 'iis-500' });
    }
    elsif ($state ne 'healthy' && $state ne 'seed') {
        die "EH::Day: unknown state '$state' (have: @STATES)\n";
    }

    # what every server answers whatever its state: stale links, and the
    # users of a mailbox database that is down (through every front end)
    $b->prepend({ name => 'stale', path => '^/owa/old/', status => 302,
        headers => { Location => '/owa/auth/errorFE.aspx?httpCode=404' },
        body => '' });
    $b->prepend({ name => "dbdown-$_", user => $_, path => '^/owa/$',
                  capture => 'errorfe-redirect', beserver => 'MBX7' })
        for qw(db1 db2 db3);
}

# Anonymous clients asking for the errorFE page with made-up cookies.
sub forged {
    my ($self, $front, $n) = @_;
    for my $i (1 .. ($n // 9)) {
        $front->request($_ => '/owa/auth/errorFE.aspx?httpCode=500&be=EXCH2',
                        cookies => { cadata => "forged$i" }) for qw(GET POST);
    }
}

# One client's share of a phase: users $first, $first + C, ...; returns
# the number of signed-in requests whose final answer was not 200.  With
# seconds => S, its requests are spread over S seconds.
sub _client {
    my ($self, $front, $first, $tag) = @_;
    my $failed = 0;
    my @h = defined $tag ? (headers => { 'X-EH-Front' => $tag }) : ();
    my $mine = int(($self->{users} - $first) / $self->{clients}) + 1;
    my $pause = $self->{seconds} ? $self->{seconds} / ($mine * $self->{rounds})
                                 : 0;
    my $next = time;
    for my $round (1 .. $self->{rounds}) {
        for (my $u = $first; $u <= $self->{users}; $u += $self->{clients}) {
            my $r = $front->request(GET => '/owa/', signed_in => "user$u", @h);
            $failed++ unless ($r->{status} // 0) == 200;
            $next += $pause;
            sleep $next - time if $next > time;
        }
        next unless $first == 1;
        $front->request(GET => '/owa/auth/logon.aspx?replaceCurrent=1', @h)
            for 1 .. 3;
        $front->request(GET => '/owa/old/inbox.aspx', signed_in => "user$_", @h)
            for 1 .. 2;
        $front->request(GET => '/owa/', signed_in => "db$_", @h) for 1 .. 3;
    }
    return $failed;
}

# One phase of traffic through a front end: what the users saw, and the
# signed-in users' requests each server took.  With tag => T, the logs
# are not cleared and only the requests sent with that tag are counted:
# several front ends can then run the same phase at once (phase()).
sub traffic {
    my ($self, $front, %o) = @_;
    my $farm = $self->{farm};
    my $tag = $o{tag};
    $farm->clear_logs unless defined $tag;

    my $failed = 0;
    $failed += $_ for $self->_at_once(map { my $c = $_;
        sub { $self->_client($front, $c, $tag) } } 1 .. $self->{clients});

    return { failed => $failed, requests => $self->signed_in,
             load => $self->load($tag) };
}

# The signed-in users' requests each server took (those sent with $tag).
sub load {
    my ($self, $tag) = @_;
    my $farm = $self->{farm};
    return { map {
        my $s = $_;
        $s => scalar(grep {
                  ($_->{user} // '') =~ /^user\d+$/
                  && (!defined $tag
                      || ($_->{headers}{'x-eh-front'} // '') eq $tag)
              } $farm->server($s)->requests(path => '^/owa/$'))
    } $farm->names };
}

# The same phase through several front ends at once, { name => front }:
# { name => traffic() result }.
sub phase {
    my ($self, $fronts) = @_;
    $self->{farm}->clear_logs;
    my @names = sort keys %$fronts;
    my @failed = $self->_at_once(map { my $name = $_;
        sub { $self->traffic($fronts->{$name}, tag => $name)->{failed} } }
        @names);
    my %res;
    for my $i (0 .. $#names) {
        $res{ $names[$i] } = { failed => $failed[$i],
                               requests => $self->signed_in,
                               load => $self->load($names[$i]) };
    }
    return \%res;
}

# Each sub in a child process of its own, all at once; the numbers they
# return, in order.  One that dies counts every signed-in request failed.
# A single sub runs here.
sub _at_once {
    my ($self, @subs) = @_;
    return map { $_->() } @subs if @subs <= 1;
    my @kids;
    for my $sub (@subs) {
        pipe my $r, my $w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            my $n = eval { $sub->() } // $self->signed_in;
            print $w "$n\n";
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    return map {
        my ($pid, $r) = @$_;
        my $n = <$r>;
        waitpid $pid, 0;
        defined $n ? $n + 0 : $self->signed_in;
    } @kids;
}

# Is the load within 10 % of even over @healthy?
sub even {
    my ($load, @healthy) = @_;
    my $total = 0;
    $total += $load->{$_} for @healthy;
    return 0 unless $total;
    for (@healthy) {
        return 0 if abs($load->{$_} / $total - 1 / @healthy) > 0.10;
    }
    return 1;
}

# The module as the day runs it, with its status page.
sub module_front {
    my ($farm, %o) = @_;
    my $eject = delete $o{eject} // '2s';
    return EH::Front::nginx($farm,
        upstream => "exchange_health_eject time=$eject;",
        server => 'location = /status { exchange_health_status; }', %o);
}

# Plain nginx as its best practice would have it.
sub plain_front {
    my ($farm, %o) = @_;
    my $scheme = $farm->scheme;
    return EH::Nginx->new(%o, module => 0,
        http => $farm->upstream_block('exchange',
                    all => 'max_fails=1 fail_timeout=10s') . <<"CONF");
server {
    listen 127.0.0.1:{{PORT}};
    location / {
        proxy_pass $scheme://exchange;
        proxy_ssl_verify off;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream error timeout http_500 http_502 http_503;
    }
}
CONF
}

# Farm-wide fault transitions the module logged since $mark.
sub transitions {
    my ($ng, $mark) = @_;
    my $n = () = $ng->error_log_since($mark)
        =~ /farm-wide fault for \S+(?:, not ejecting| cleared)/g;
    return $n;
}

# The servers the module has out (ejected or on trial) for OWA.
sub out {
    my ($ng) = @_;
    my ($j) = EH::Front::status_json($ng);
    return join ' ', sort map { $_->{name} } grep {
        ($_->{protocols}{owa}{state} // '') =~ /ejected|trial/ }
        @{ $j->{upstreams}[0]{servers} };
}

1;
