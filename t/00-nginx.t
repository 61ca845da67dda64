# Harness self-test: EH::Nginx with the module in front of a 3-server
# HTTPS farm; reload, stop, config errors, the error log check.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;

use File::Temp qw(tempdir);

my $farm = farm(n => 3, tls => 1);
my $front = cert(cn => 'mail.contoso.com');

my $upstream = $farm->upstream_block('exchange');
my $ng = nginx(http => <<"CONF");
$upstream
    server {
        listen 127.0.0.1:{{PORT}};
        location / {
            proxy_pass https://exchange;
            proxy_ssl_verify off;
        }
    }
    server {
        listen 127.0.0.1:{{PORT_ADMIN}};
        location / { return 200 "admin \$server_port\n"; }
    }
    server {
        listen 127.0.0.1:{{PORT_TLS}} ssl;
        ssl_certificate $front->{cert};
        ssl_certificate_key $front->{key};
        location / { proxy_pass https://exchange; }
    }
CONF

SKIP: {
    skip 'EH_MODULE=static: the module is built in', 1
        unless EH::Nginx::module_path();
    like $ng->config_text, qr/^load_module \Q${\ EH::Nginx::module_path()}\E;$/m,
        'config loads the module';
}
like $ng->config_text, qr{proxy_temp_path \Q${\ $ng->prefix}\E/tmp/proxy;}, 'temp paths in the prefix';
unlike $ng->config_text, qr/\{\{PORT/, 'port placeholders replaced';
isnt $ng->port, $ng->port('ADMIN'), 'named port differs from the main port';

$ng->start;
my @workers = $ng->worker_pids;
is scalar @workers, 1, 'one worker';
my $maps = slurp("/proc/$workers[0]/maps");
like $maps, qr/\Q${\ EH::Nginx::module_path()}\E/, 'the module is mapped in the worker';

subtest 'requests spread over the farm' => sub {
    $farm->clear_logs;
    my @r = map { $ng->request(GET => '/owa/', signed_in => 'alice') } 1 .. 9;
    is scalar(grep { $_->{status} == 200 } @r), 9, 'nine 200s through nginx';
    is_deeply $farm->hits, { EXCH1 => 3, EXCH2 => 3, EXCH3 => 3 }, 'round robin over all three';
    my %fe = map { $_->header('X-FEServer') => 1 } @r;
    is scalar keys %fe, 3, 'three different X-FEServer values';
    my ($e) = $farm->requests;
    is $e->{user}, 'alice', 'cookies reach the backend';
    my @acc = $ng->wait_access_entries(9);
    is scalar @acc, 9, 'access log entries';
    is $farm->name_of($acc[0]{upstream_addr}), $e->{server}, 'access log upstream_addr maps to the server';
    is $ng->request(GET => '/', port => 'ADMIN')->{body}, "admin " . $ng->port('ADMIN') . "\n",
        'named port';
    my $r = $ng->request(GET => '/owa/healthcheck.htm', port => 'TLS', tls => 1);
    is $r->{status}, 200, 'HTTPS front end';
    is $r->{peer_cert}{cn}, 'mail.contoso.com', '... with its certificate';
    is $farm->wait_total_hits(10), 10, 'wait_total_hits';
};

subtest 'reload' => sub {
    my $m = $ng->mark;
    ok $ng->reload, 'reload returns true';
    my @new = $ng->worker_pids;
    is scalar @new, 1, 'one worker after reload';
    isnt $new[0], $workers[0], "worker changed ($workers[0] -> $new[0])";
    ok !kill(0, $workers[0]), 'old worker gone';
    ok scalar($ng->grep_error_log(qr/reconfiguring/, since => $m)), 'error log since mark shows the reload';
    is $ng->request(GET => '/owa/', signed_in => 'alice')->{status}, 200, 'serving after reload';

    # reload with a changed configuration
    ok $ng->reload(http => $farm->upstream_block('exchange', servers => ['EXCH3']) . q{
        server { listen 127.0.0.1:{{PORT}};
                 location / { proxy_pass https://exchange; } }
        server { listen 127.0.0.1:{{PORT_ADMIN}}; return 200 "admin2\n"; }
    }), 'reload with new config';
    $farm->clear_logs;
    $ng->request(GET => '/owa/', signed_in => 'alice') for 1 .. 3;
    is_deeply $farm->hits, { EXCH1 => 0, EXCH2 => 0, EXCH3 => 3 }, 'new upstream in effect';
    is $ng->request(GET => '/', port => 'ADMIN')->{body}, "admin2\n", 'new admin server';

    # a bad configuration is refused and nginx keeps running
    ok $ng->reload(http => "bogus_directive on;\n", expect_fail => 1), 'bad reload detected';
    is $ng->request(GET => '/', port => 'ADMIN')->{body}, "admin2\n", 'old config still serving';
    is scalar($ng->problems), 0, "the expected [emerg] is allowed in the final check";
};

subtest 'stop' => sub {
    my @pids = $ng->all_pids;
    ok @pids >= 2, 'master and worker running';
    ok $ng->stop, 'stop (runs the error log assertion)';
    ok !grep({ kill 0, $_ } @pids), 'all nginx processes gone';
    like $ng->error_log, qr/\[notice\] \d+#\d+: exit$/m, 'master logged its exit';
    my $r = EH::Client->request(GET => '/', port => $ng->port, timeout => 2);
    like $r->{error}, qr/connect/, 'port closed';
};

subtest 'config errors' => sub {
    my $bad = nginx(http => q{
        server { listen 127.0.0.1:{{PORT}}; bogus_directive on; }
    });
    my ($rc, $out) = $bad->test_config;
    isnt $rc, 0, 'nginx -t fails';
    like $out, qr/unknown directive "bogus_directive"/, "nginx's message is returned";
    like $out, qr/test failed/, '... and the verdict';
    is scalar($bad->problems), 0, 'a config test does not pollute the main error log';
    my $good = nginx(http => q{ server { listen 127.0.0.1:{{PORT}}; return 204; } });
    my ($rc2, $out2) = $good->test_config;
    is $rc2, 0, 'good config passes';
    like $out2, qr/syntax is ok/, 'nginx -t output';
};

subtest 'error log check' => sub {
    my $text = join "\n",
        '2025/01/01 00:00:00 [notice] 1#1: start worker process 2',
        '2025/01/01 00:00:00 [error] 2#2: *1 upstream prematurely closed connection',
        '2025/01/01 00:00:00 [alert] 2#2: *3 planted alert',
        '2025/01/01 00:00:00 [emerg] 1#1: planted emerg',
        '2025/01/01 00:00:00 [alert] 1#1: worker process 2 exited on signal 11 (core dumped)',
        '2025/01/01 00:00:00 [notice] 1#1: worker process 5 exited on signal 9',
        '2025/01/01 00:00:00 [crit] 2#2: not checked';
    my @bad = EH::Nginx::log_problems($text);
    is scalar @bad, 4, 'four offending lines';
    like $bad[0], qr/planted alert/, 'alert caught';
    like $bad[1], qr/planted emerg/, 'emerg caught';
    like $bad[2], qr/exited on signal 11/, 'crash caught';
    like $bad[3], qr/exited on signal 9/, 'signal exit at notice level caught';
    is scalar(EH::Nginx::log_problems($text, qr/planted/)), 2, 'allow patterns';
    is scalar(EH::Nginx::log_problems("[error] x\n[warn] y\n")), 0, 'clean log';

    # Run whole test scripts to see the assertion work end to end.
    my $dir = tempdir(CLEANUP => 1);
    my $lib = "$FindBin::Bin/lib";
    my $script = sub {
        my ($name, $body) = @_;
        spew("$dir/$name.t", qq{use lib '$lib';\nuse EH::Test;\n}
            . q{my $ng = nginx(http => 'server { listen 127.0.0.1:{{PORT}}; return 200 "x\n"; }');}
            . qq{\n\$ng->start;\nprint "# pids ", join(',', \$ng->all_pids), "\\n";\n$body\n});
        my $out = `$^X $dir/$name.t 2>&1`;
        my $rc = $? >> 8;
        my ($pids) = $out =~ /# pids (\S+)/;
        return ($rc, $out, [ split /,/, $pids // '' ]);
    };
    my $plant = q{open my $fh, '>>', $ng->prefix . '/logs/error.log';
                  print $fh "2025/01/01 00:00:00 [alert] 1#1: planted by the test\n"; close $fh;};

    my ($rc, $out, $pids) = $script->('clean', q{$ng->request(GET => '/'); $ng->stop; done_testing;});
    is $rc, 0, 'clean script passes' or diag $out;
    like $out, qr/^ok 1 - nginx error log has no alert/m, 'stop asserts';

    ($rc, $out) = $script->('planted-stop', "$plant \$ng->stop; done_testing;");
    isnt $rc, 0, 'planted [alert]: stop fails the test';
    like $out, qr/^not ok 1 - nginx error log/m, '... with a failed assertion';
    like $out, qr/#\s+.*planted by the test/, '... showing the line';

    ($rc, $out, $pids) = $script->('planted-end', "$plant ok 1; done_testing;");
    isnt $rc, 0, 'planted [alert], no stop, done_testing called: script fails at exit';
    like $out, qr/planted by the test/, '... showing the line';
    ok @$pids >= 2 && !grep({ kill 0, $_ } @$pids), 'nginx killed at END';

    ($rc, $out, $pids) = $script->('planted-noplan', "$plant ok 1;");
    isnt $rc, 0, 'planted [alert], no stop, no plan: fails';
    like $out, qr/^not ok 2 - nginx error log .*at exit/m, '... via an assertion at exit';

    ($rc, $out, $pids) = $script->('dies', "die 'test died';");
    isnt $rc, 0, 'test that dies fails';
    ok @$pids >= 2 && !grep({ kill 0, $_ } @$pids), 'nginx killed at END after die';
};

done_testing;
