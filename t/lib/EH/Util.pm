package EH::Util;

# Small shared helpers for the test harness: the per-run temporary
# directory, free ports, file helpers, polling, process bookkeeping.

use strict;
use warnings;

# Load Test::More first so that Test2's END block (which computes the exit
# status) runs after the harness's END block below.
use Test::More ();

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EADDRINUSE);
use Fcntl qw(:flock O_WRONLY O_CREAT O_EXCL);
use File::Basename qw(dirname);
use File::Path qw(remove_tree make_path);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Socket qw(SOL_SOCKET SO_REUSEADDR IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT_OK = qw(
    run_dir repo_root captures_dir free_port listen_socket slurp spew
    spew_atomic wait_until json_encode json_decode is_root
    register_cleanup in_creator
);

# Directory holding this file: t/lib/EH
my $HERE = dirname(abs_path(__FILE__));

sub repo_root    { abs_path("$HERE/../../..") }
sub captures_dir { $ENV{EH_CAPTURES} // repo_root() . '/t/captures' }
sub is_root      { $> == 0 }

# The pid that loaded the harness: forked children must never clean up
# what the test process started.
our $CREATOR = $$;
sub in_creator { $$ == $CREATOR }

# ---------------------------------------------------------------- run dir

my $RUN_DIR;

sub run_dir {
    return $RUN_DIR if defined $RUN_DIR && -d $RUN_DIR;
    my $base = $ENV{EH_TMPDIR} // File::Spec->tmpdir;
    my $name = $0;
    $name =~ s{.*/}{};
    $name =~ s/[^A-Za-z0-9_.-]+/_/g;
    $RUN_DIR = tempdir("eh-$name-XXXXXX", DIR => $base, CLEANUP => 0);
    chmod 0755, $RUN_DIR;
    return $RUN_DIR;
}

# Cleanup callbacks run (once, in the creator process) from END, in
# reverse order of registration.  Each gets no arguments.
my @CLEANUP;
sub register_cleanup { push @CLEANUP, $_[0] }

sub _run_cleanup {
    return unless in_creator();
    while (my $cb = pop @CLEANUP) {
        eval { $cb->(); 1 } or warn "EH cleanup: $@";
    }
    if (defined $RUN_DIR && -d $RUN_DIR) {
        if ($ENV{EH_KEEP}) {
            print STDERR "# EH_KEEP: test files kept in $RUN_DIR\n";
        }
        else {
            remove_tree($RUN_DIR);
        }
    }
}

# ---------------------------------------------------------------- ports

# Listening ports are chosen below the kernel's ephemeral range so that
# they never clash with the local ports of outgoing connections.
my %HANDED_OUT;

sub _candidate_port {
    my ($lo, $hi) = (20000, 32000);
    for (1 .. 200) {
        my $p = $lo + int rand($hi - $lo);
        next if $HANDED_OUT{$p};
        return $p;
    }
    croak "no candidate port left";
}

# Open a listening socket on 127.0.0.1 on a free port (or on $port).
sub listen_socket {
    my (%o) = @_;
    my $tries = defined $o{port} ? 1 : 50;
    for (1 .. $tries) {
        my $port = $o{port} // _candidate_port();
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => $o{backlog} // 128,
            ReuseAddr => 1,
        );
        if ($s) {
            $HANDED_OUT{$port} = 1;
            return $s;
        }
        croak "cannot listen on 127.0.0.1:$port: $!" if defined $o{port};
    }
    croak "cannot find a free port: $!";
}

# A port that is free right now (for nginx, which binds it itself).
sub free_port {
    for (1 .. 100) {
        my $port = _candidate_port();
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1',
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
            ReuseAddr => 1,
        ) or next;
        close $s;
        $HANDED_OUT{$port} = 1;
        return $port;
    }
    croak "cannot find a free port";
}

# ---------------------------------------------------------------- files

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or croak "cannot read $file: $!";
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

sub spew {
    my ($file, $data) = @_;
    open my $fh, '>:raw', $file or croak "cannot write $file: $!";
    print {$fh} $data or croak "cannot write $file: $!";
    close $fh or croak "cannot write $file: $!";
    return $file;
}

# Write through a temporary file and rename, so that a reader never sees
# a half-written file.
my $spew_seq = 0;
sub spew_atomic {
    my ($file, $data) = @_;
    my $tmp = "$file.tmp.$$." . $spew_seq++;
    spew($tmp, $data);
    rename $tmp, $file or croak "cannot rename $tmp to $file: $!";
    return $file;
}

# ---------------------------------------------------------------- misc

# Ask the kernel to send $sig to this process when its parent dies
# (prctl PR_SET_PDEATHSIG; Linux x86_64/aarch64 only, else a no-op), so
# nothing the harness started outlives a test killed with SIGKILL.
sub die_with_parent {
    my ($sig) = @_;
    require Config;
    my $arch = $Config::Config{archname} // '';
    my $nr = $arch =~ /x86_64/ ? 157 : $arch =~ /aarch64/ ? 167 : return 0;
    my $num = $sig =~ /\A\d+\z/ ? $sig : { TERM => 15, KILL => 9, INT => 2 }->{$sig} // 15;
    return syscall($nr, 1, $num) == 0;
}

# Poll $cb every $step seconds until it returns true or $timeout
# seconds pass; returns the last value of $cb.
sub wait_until {
    my ($cb, %o) = @_;
    my $timeout = $o{timeout} // 10;
    my $step    = $o{step}    // 0.02;
    my $end = time + $timeout;
    while (1) {
        my $v = $cb->();
        return $v if $v;
        return $v if time >= $end;
        sleep $step;
    }
}

my $JSON = JSON::PP->new->canonical->allow_nonref->allow_blessed;
sub json_encode { $JSON->encode($_[0]) }
sub json_decode { $JSON->decode($_[0]) }

# Make sure SIGINT / SIGTERM still run END blocks (which kill what the
# harness started) instead of killing perl outright.
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { exit 128 + 2 }
        if !defined $SIG{$sig} || $SIG{$sig} eq '' || $SIG{$sig} eq 'DEFAULT';
}

# Set by cleanup code that found a problem after the test could no longer
# take an assertion (done_testing already called): the script exits 255.
our $EXIT_FAIL = 0;

END {
    my $status = $?;
    _run_cleanup();
    $? = $status || ($EXIT_FAIL && in_creator() ? 255 : 0);
}

1;
