#!/usr/bin/perl

# The state file against a hostile or careless directory: the master
# writes it as root at exit into a directory the worker user can write, so
# nothing planted there (a link at the temporary or the final name) is
# followed; reading never waits on a FIFO or follows a link, and a file
# bigger than the zone can hold is not read; a directory missing or not
# writable by the worker user fails nginx -t, as a log file would.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use POSIX qw(mkfifo);

plan skip_all => 'needs root: the master writes as root, the workers not'
    unless $> == 0;

my $farm = farm(tls => 1);
my $dir = run_dir() . '/state';
mkdir $dir or die "$dir: $!";
my $state = "$dir/exchange.state";
my %o = (zone => "1m state=$state",
         upstream => 'exchange_health_eject time=10m;',
         location => 'exchange_health_retry off;');

# a root-only file elsewhere: what a planted link would make root overwrite
my $victim = run_dir() . '/victim';
spew($victim, "root's own\n");
chmod 0600, $victim;

sub victim_intact { slurp($victim) eq "root's own\n" }

subtest 'a link at the old temporary name is not followed' => sub {
    my $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    $ng->request(GET => '/owa/', signed_in => "u$_") for 1 .. 3;
    my $pid = $ng->pid;
    symlink $victim, "$state.tmp.$pid" or die $!;
    $ng->stop;
    ok victim_intact(), 'the file the link points to is unchanged';
    ok -f $state && !-l $state, 'the state file was written';
    is sprintf('%o', (stat $state)[2] & 07777), '600', '... mode 0600';
    is_deeply [grep { !/\.tmp\.\d+$/ } glob("$state.tmp.*")], [],
        'no temporary file left behind';
    unlink "$state.tmp.$pid";
};

subtest 'a link at the state file\'s name is replaced, not followed' => sub {
    unlink $state;
    symlink $victim, $state or die $!;
    my $ng = EH::Front::nginx($farm, %o);
    $ng->start;
    like $ng->error_log, qr/state file ".*exchange\.state" cannot be opened \(a symbolic link is not followed\), starting afresh/,
        'the link is not read';
    $ng->request(GET => '/owa/', signed_in => "v$_") for 1 .. 3;
    $ng->stop;
    ok victim_intact(), 'the file it points to is unchanged';
    ok -f $state && !-l $state, 'a regular state file took its place';
};

subtest 'a FIFO at the state file\'s name does not hold nginx up' => sub {
    unlink $state;
    mkfifo($state, 0600) or die "mkfifo: $!";
    my $ng = EH::Front::nginx($farm, %o, allow => [qr/is not a regular file/]);
    $ng->start;
    like $ng->error_log, qr/state file ".*exchange\.state" is not a regular file, ignored/,
        'nginx started and said why it read nothing';
    is $ng->request(GET => '/owa/', signed_in => 'w')->{status}, 200,
        '... and serves';
    $ng->stop(no_check => 1);
    unlink $state;
};

subtest 'a file bigger than the zone can hold is not read' => sub {
    my $addr = $farm->server('EXCH1')->addr;
    my $line = "slot exchange $addr owa state=up\n";
    open my $fh, '>', $state or die $!;
    print $fh "exchange-health-state 1\n";
    print $fh $line x int(16 * 1024 * 1024 / length $line);
    print $fh "end\n";
    close $fh;

    my $ng = EH::Front::nginx($farm, %o, allow => [qr/bigger than the zone/]);
    $ng->start;
    like $ng->error_log, qr/state file ".*exchange\.state" is bigger than the zone can hold \(\d+ > \d+ bytes\), ignored/,
        '16 MB for a 1m zone: ignored, with the sizes';
    $ng->stop(no_check => 1);

    # under the size bound, more records than the zone has room for
    open $fh, '>', $state or die $!;
    print $fh "exchange-health-state 1\n";
    print $fh "slot exchange 10.0.$_->[0].$_->[1]:443 owa state=up\n"
        for map { my $i = $_; [int($i / 250), $i % 250] } 0 .. 9999;
    print $fh "end\n";
    close $fh;
    $ng = EH::Front::nginx($farm, %o, allow => [qr/the file is ignored/]);
    $ng->start;
    like $ng->error_log, qr/state file ".*exchange\.state" line \d+: a record the module could not take; the file is ignored/,
        '10,000 records for a zone of 257 servers: ignored';
    open my $st, '<', '/proc/' . $ng->pid . '/status' or die $!;
    my ($hwm) = map { /^VmHWM:\s+(\d+)/ ? $1 : () } <$st>;
    cmp_ok $hwm, '<', 200_000, "the master's peak memory stays small ($hwm kB)";
    $ng->stop(no_check => 1);
    unlink $state;
};

# nginx -t: (exit status, output)
sub config_test {
    my (%x) = @_;
    my $ng = EH::Front::nginx($farm, %o, %x);
    return $ng->test_config;
}

subtest 'nginx -t checks the directory' => sub {
    my ($rc, $out) = config_test(zone => '1m state=' . run_dir() . '/nowhere/x.state');
    isnt $rc, 0, 'a missing directory fails nginx -t';
    like $out, qr/\[emerg\] .*exchange_health_zone "exchange": the state file's directory ".*\/nowhere\/" does not exist or is not a directory: create it for the user "root", e\.g\. install -d -o root -m 0700 /,
        '... naming it, the user, and how to make it';

    my $ro = run_dir() . '/rootonly';
    mkdir $ro, 0755 or die $!;
    ($rc, $out) = config_test(zone => "1m state=$ro/x.state", user => 'nobody nogroup');
    isnt $rc, 0, 'a directory the worker user cannot write fails nginx -t';
    like $out, qr/\[emerg\] .*the state file's directory ".*\/rootonly\/" is not writable by the user "nobody" that writes the file: chown nobody /,
        '... naming it and the user';

    chown scalar(getpwnam('nobody')), -1, $ro;
    ($rc, $out) = config_test(zone => "1m state=$ro/x.state", user => 'nobody nogroup');
    is $rc, 0, 'once it is the worker user\'s, nginx -t passes' or diag $out;
};

done_testing;
