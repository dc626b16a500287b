// A mysql-users artifact is run as root on the server: only each account's CREATE USER and its own
// GRANTs are taken, and a line that is anything else fails it before anything runs, without
// repeating the line (it may hold a password hash).
import { expect, it } from 'vitest';
import { parseMysqlAccounts } from '../../src/plugins/databases/mysql-users.js';

const HASH = "'*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'";

it('takes each account with its statements, as SHOW printed them', () => {
  const sql = [
    '-- MariaDB accounts with privileges on schema ghost',
    `CREATE USER \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`,
    `GRANT USAGE ON *.* TO \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`,
    'GRANT ALL PRIVILEGES ON `ghost`.* TO `ghost`@`%`',
    'CREATE USER `odd``name`@`10.0.%`',
    'GRANT SELECT ON `ghost`.* TO `odd``name`@`10.0.%`',
    '',
  ].join('\n');
  expect(parseMysqlAccounts(sql)).toEqual([
    { user: 'ghost', host: '%', statements: [`CREATE USER \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`, `GRANT USAGE ON *.* TO \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`, 'GRANT ALL PRIVILEGES ON `ghost`.* TO `ghost`@`%`'] },
    { user: 'odd`name', host: '10.0.%', statements: ['CREATE USER `odd``name`@`10.0.%`', 'GRANT SELECT ON `ghost`.* TO `odd``name`@`10.0.%`'] },
  ]);
});

it('fails on any other line, naming its number and not its text', () => {
  const cases = [
    `DROP DATABASE ghost`,
    `GRANT ALL PRIVILEGES ON *.* TO \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`, // a GRANT before any CREATE USER
    `CREATE USER \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}\nGRANT ALL PRIVILEGES ON *.* TO \`root\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}`, // another account's grant
    `CREATE USER \`ghost\`@\`%\`; DROP DATABASE ghost`,
    `CREATE USER \`ghost\`@\`%\` IDENTIFIED BY PASSWORD ${HASH}; DROP DATABASE ghost`,
    `CREATE USER \`ghost\`@\`%\`\nGRANT ALL PRIVILEGES ON \`ghost\`.* TO \`ghost\`@\`%\`; DROP DATABASE ghost`,
  ];
  for (const sql of cases) {
    let message = '';
    try {
      parseMysqlAccounts(sql);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message, sql).toMatch(/line \d+ is not a CREATE USER or a GRANT of its account/);
    expect(message).not.toContain('2470C0C0');
  }
});
