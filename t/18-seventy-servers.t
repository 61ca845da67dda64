#!/usr/bin/perl

# A farm of 70 servers: those past the 64th are judged, passed over by a
# retry and ejected like any other, and their failures make no other
# server look failing.  EXCHn is the nth server of the upstream, index
# n - 1 as the module counts them: EXCH64 is index 63.
#
# The farm's "failing" map (the servers seen failing requests that failed
# on every server tried) once kept a bit per server in one 64-bit word,
# and servers from index 63 on shared the last bit: a request failure on
# two of them marked EXCH64 failing too, and a good answer from any of
# them cleared the others.  The first part, seventy servers in service,
# is the usual case at that size.  The second, where only servers from
# EXCH64 on take requests, is where the shared bit went wrong: a
# farm-wide fault was raised while EXCH64 and EXCH65 answered well, and
# users kept meeting two broken servers in a row.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

# 70 simulated servers: one spare worker each is plenty here
$EH::Backend::MIN_SPARE = 1;

my $farm = farm(n => 70);
my $user = 0;

sub ejected {
    my ($ng) = @_;
    my @e = sort map { $_->{server} } EH::Front::changes($ng, 'ejected');
    return @e;
}

# signed-in OWA requests from $who->() until $n servers are ejected, or
# $max requests: the answers
sub drive {
    my ($ng, $max, $n, $who) = @_;
    my @answers;
    for (1 .. $max) {
        push @answers, $ng->request(GET => '/owa/', signed_in => $who->());
        last if ejected($ng) == $n;
    }
    return @answers;
}

# the servers each request tried, by name
sub tries {
    my ($ng, $n) = @_;
    return map { [ map { $farm->name_of($_) } split /, /, $_ ] }
           map { $_->{upstream_addr} } EH::Front::wait_verdicts($ng, $n);
}

subtest 'seventy servers in service, three broken' => sub {
    my @broken = qw(EXCH63 EXCH66 EXCH67);

    $farm->heal;
    $farm->server($_)->preset('seed') for @broken;

    my $ng = EH::Front::nginx($farm);
    $ng->start;

    # one user each, until the three are ejected
    my @answers = drive($ng, 70 * 8, 3, sub { 'u' . ++$user });

    is_deeply [ejected($ng)], \@broken,
        'EXCH63, EXCH66 and EXCH67 ejected, each once, and no other server';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'no farm-wide fault';

    my @tries = tries($ng, scalar @answers);

    # round robin takes them in turn, a retry the next in line: the first
    # request to meet EXCH66 was retried on EXCH67, and failed on both
    my @failed = grep { $_->{status} != 200 } @answers;
    is scalar(@failed), 1, 'one request failed, of ' . scalar(@answers);
    is_deeply [ grep { @$_ == 2 && $_->[1] =~ /^EXCH6[367]\z/ } @tries ],
              [ [qw(EXCH66 EXCH67)] ],
        '... on EXCH66 then EXCH67; no other retry met a broken server';

    for my $name (@broken) {
        my @r = grep { $_->[0] eq $name && @$_ == 2 } @tries;
        ok @r >= 3, "$name: each of its failures judged and retried ("
            . scalar(@r) . ')';
    }

    # ejected servers take no more OWA; the 64th and 65th their share
    $farm->clear_logs;
    my @ok = map { $ng->request(GET => '/owa/', signed_in => 'u' . ++$user) }
             1 .. 2 * 67;
    is scalar(grep { $_->{status} == 200 } @ok), scalar(@ok),
        'afterwards every request answered well';
    my $hits = $farm->hits(path => '^/owa/');
    is_deeply [ @$hits{@broken} ], [0, 0, 0],
        '... none by the ejected servers';
    is_deeply [ @$hits{qw(EXCH64 EXCH65)} ], [2, 2],
        '... EXCH64 and EXCH65 take their share: two each of 134';

    $ng->stop;
};

subtest 'the 64th and 65th healthy, every server after them broken' => sub {
    my @healthy = qw(EXCH64 EXCH65);
    my @broken = map { "EXCH$_" } 66 .. 70;

    $farm->heal;
    $farm->server($_)->preset('seed') for @broken;

    # the first 63 are down: only servers from the 64th on take requests
    my $ng = EH::Front::nginx($farm,
        params => { map { ("EXCH$_" => 'down') } 1 .. 63 });
    $ng->start;

    # a few users, who vote once an answer has proven them signed in
    my @answers = drive($ng, 200, 5, sub { 'v' . ++$user % 4 });

    is_deeply [ejected($ng)], \@broken,
        'EXCH66 to EXCH70 ejected, each once';
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
        'no farm-wide fault: EXCH64 and EXCH65 never looked failing';

    my @tries = tries($ng, scalar @answers);

    # A request that fails on two broken servers marks both; a retry
    # passes over every server marked, so each such request met a server
    # not met before on its retry: four at most, for five servers.
    my @failed = grep { @$_ == 2 && $_->[1] =~ /^EXCH(?:6[6-9]|70)\z/ }
                 @tries;
    ok @failed >= 1 && @failed <= 4,
        'requests that failed on two broken servers: ' . scalar(@failed);
    is scalar(grep { $_->{status} != 200 } @answers), scalar(@failed),
        '... every other user answered well';

    # three failures each, confirmed by a good answer, eject a server
    my @rescued = grep { @$_ == 2 && $_->[1] =~ /^EXCH6[45]\z/ } @tries;
    ok @rescued >= 15, 'failures retried on EXCH64 or EXCH65: '
        . scalar(@rescued);
    ok scalar(grep { $_->[1] eq 'EXCH64' } @rescued)
       && scalar(grep { $_->[1] eq 'EXCH65' } @rescued),
        '... on both of them';

    $farm->clear_logs;
    my @ok = map { $ng->request(GET => '/owa/', signed_in => 'v' . $_ % 4) }
             1 .. 10;
    is scalar(grep { $_->{status} == 200 } @ok), 10,
        'afterwards every request answered well';
    my $hits = $farm->hits(path => '^/owa/');
    is_deeply [ @$hits{@healthy} ], [5, 5],
        '... by EXCH64 and EXCH65, five each';

    $ng->stop;
};

done_testing;
