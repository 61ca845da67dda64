package EH::Farm;

# A farm of simulated Exchange servers.  See t/lib/README.md.

use strict;
use warnings;

use Carp qw(croak);
use EH::Backend ();
use EH::Util ();

# EH::Farm->new(n => 3, names => [...], tls => 0|1, preset => 'healthy',
#               backend => { extra EH::Backend->new options },
#               each => { EXCH2 => { options for that server only } })
sub new {
    my ($class, %o) = @_;
    my @names = $o{names} ? @{ $o{names} } : map { "EXCH$_" } 1 .. ($o{n} // 3);
    croak "EH::Farm: no servers" unless @names;
    my %seen;
    $seen{$_}++ and croak "EH::Farm: duplicate server name $_" for @names;
    my $self = bless { tls => $o{tls} ? 1 : 0, names => \@names, servers => {} }, $class;
    for my $n (@names) {
        $self->{servers}{$n} = EH::Backend->new(
            name => $n, tls => $self->{tls},
            (defined $o{preset} ? (preset => $o{preset}) : ()),
            %{ $o{backend} || {} },
            %{ ($o{each} || {})->{$n} || {} },
        );
    }
    return $self;
}

sub tls     { $_[0]{tls} }
sub scheme  { $_[0]{tls} ? 'https' : 'http' }
sub names   { @{ $_[0]{names} } }
sub servers { my $s = shift; map { $s->{servers}{$_} } @{ $s->{names} } }

sub server {
    my ($self, $name) = @_;
    my $b = $self->{servers}{$name}
        // (grep { lc $_->name eq lc $name } values %{ $self->{servers} })[0];
    croak "EH::Farm: no server '$name' (have: @{ $self->{names} })" unless $b;
    return $b;
}

# The accounts every server's forms sign-in accepts (EH::Backend::accounts).
sub accounts {
    my ($self, %acc) = @_;
    $_->accounts(%acc) for $self->servers;
    return $self;
}

# Every server's EWS, ActiveSync and MAPI take Windows sign-in only
# (EH::Backend::windows).
sub windows {
    my ($self, $on) = @_;
    $_->windows($on) for $self->servers;
    return $self;
}

# Server name for an upstream address as nginx logs it ("127.0.0.1:PORT").
sub name_of {
    my ($self, $addr) = @_;
    return undef unless defined $addr;
    my ($port) = $addr =~ /:(\d+)\z/ or return undef;
    for ($self->servers) { return $_->name if $_->port == $port }
    return undef;
}

# "proxy_pass https://NAME;" with the farm's scheme.
sub proxy_pass {
    my ($self, $upstream) = @_;
    return sprintf 'proxy_pass %s://%s;', $self->scheme, $upstream // 'exchange';
}

# upstream NAME { server 127.0.0.1:PORT PARAMS; ... EXTRA }
#   servers => [names]           only these servers (default: all)
#   params  => { EXCH3 => 'backup', EXCH1 => 'weight=2' }
#   all     => 'max_fails=1 fail_timeout=10s'   for every server line
#   extra   => "keepalive 8;\n..." or [lines]   directives after the servers
#   before  => lines placed before the server lines (e.g. zone)
sub upstream_block {
    my ($self, $name, %o) = @_;
    $name //= 'exchange';
    my @names = $o{servers} ? @{ $o{servers} } : $self->names;
    my $params = $o{params} || {};
    my @lines = ("upstream $name {", "    # " . $self->scheme . " farm: "
                 . join(', ', map { "$_=" . $self->server($_)->addr } @names));
    my $lines = sub {
        my $x = shift;
        return () unless defined $x;
        return map { "    $_" } map { split /\n/ } ref $x ? @$x : ($x);
    };
    push @lines, $lines->($o{before});
    for my $n (@names) {
        my $b = $self->server($n);
        my $p = join ' ', grep { defined && length } $o{all}, $params->{$n};
        push @lines, '    server ' . $b->addr . (length $p ? " $p" : '') . ";";
    }
    push @lines, $lines->($o{extra});
    push @lines, "}";
    return join("\n", @lines) . "\n";
}

# Logged requests of all servers, in time order; same filters as
# EH::Backend::requests plus server => name.
sub requests {
    my ($self, %f) = @_;
    my $only = delete $f{server};
    my @r;
    for my $b ($self->servers) {
        next if defined $only && $b->name ne $only;
        push @r, $b->requests(%f);
    }
    return sort { $a->{time} <=> $b->{time} } @r;
}

# { EXCH1 => n, ... } with the same filters.
sub hits {
    my ($self, %f) = @_;
    return { map { $_->name => $_->hits(%f) } $self->servers };
}

sub total_hits {
    my ($self, %f) = @_;
    my $h = $self->hits(%f);
    my $t = 0;
    $t += $_ for values %$h;
    return $t;
}

# Wait until the farm logged at least $n requests (matching the filters);
# returns the total.
sub wait_total_hits {
    my ($self, $n, %f) = @_;
    my $timeout = delete $f{timeout} // 5;
    my $count = 0;
    EH::Util::wait_until(sub { ($count = $self->total_hits(%f)) >= $n }, timeout => $timeout);
    return $count;
}

sub clear_logs { $_->clear_log for $_[0]->servers; $_[0] }
sub heal       { $_->heal for $_[0]->servers; $_[0] }
sub strip      { my ($s, @h) = @_; $_->strip(@h) for $s->servers; $s }
sub preset     { my ($s, $p) = @_; $_->preset($p) for $s->servers; $s }
sub stop       { $_->stop for $_[0]->servers; $_[0] }

1;
