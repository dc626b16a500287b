// Compares the served schema with shared/schema-contract.graphql: every type, field, argument,
// enum value, union member and input field of the contract must be served with a compatible type.
import {
  buildSchema, getNamedType, isEnumType, isInputObjectType, isInterfaceType, isListType, isNonNullType,
  isObjectType, isScalarType, isUnionType, type GraphQLSchema, type GraphQLType,
} from 'graphql';

/** Output positions may be stricter than the contract (non-null where it allows null). */
function outputCompatible(served: GraphQLType, contract: GraphQLType): boolean {
  if (isNonNullType(contract)) return isNonNullType(served) && outputCompatible(served.ofType, contract.ofType);
  if (isNonNullType(served)) return outputCompatible(served.ofType, contract);
  if (isListType(contract)) return isListType(served) && outputCompatible(served.ofType, contract.ofType);
  if (isListType(served)) return false;
  return getNamedType(served).name === getNamedType(contract).name;
}

/** Input positions may be looser than the contract (nullable where it requires a value). */
function inputCompatible(served: GraphQLType, contract: GraphQLType): boolean {
  if (isNonNullType(served)) return isNonNullType(contract) && inputCompatible(served.ofType, contract.ofType);
  if (isNonNullType(contract)) return inputCompatible(served, contract.ofType);
  if (isListType(contract)) return isListType(served) && inputCompatible(served.ofType, contract.ofType);
  if (isListType(served)) return false;
  return getNamedType(served).name === getNamedType(contract).name;
}

/** Every gap, as "Type", "Type.field", "Type.field(arg)", "Enum.VALUE", "Union|Member" with a reason. */
export function contractGaps(served: GraphQLSchema, contractSdl: string): Map<string, string> {
  const contract = buildSchema(contractSdl);
  const gaps = new Map<string, string>();
  for (const ct of Object.values(contract.getTypeMap())) {
    if (ct.name.startsWith('__')) continue;
    const st = served.getType(ct.name);
    if (!st) { gaps.set(ct.name, 'type missing'); continue; }
    if (isScalarType(ct)) { if (!isScalarType(st)) gaps.set(ct.name, 'not a scalar'); continue; }
    if (isEnumType(ct)) {
      if (!isEnumType(st)) { gaps.set(ct.name, 'not an enum'); continue; }
      for (const v of ct.getValues()) if (!st.getValue(v.name)) gaps.set(`${ct.name}.${v.name}`, 'enum value missing');
      continue;
    }
    if (isUnionType(ct)) {
      if (!isUnionType(st)) { gaps.set(ct.name, 'not a union'); continue; }
      const members = new Set(st.getTypes().map((m) => m.name));
      for (const m of ct.getTypes()) if (!members.has(m.name)) gaps.set(`${ct.name}|${m.name}`, 'union member missing');
      continue;
    }
    if (isInputObjectType(ct)) {
      if (!isInputObjectType(st)) { gaps.set(ct.name, 'not an input type'); continue; }
      const sf = st.getFields();
      for (const f of Object.values(ct.getFields())) {
        const s = sf[f.name];
        if (!s) gaps.set(`${ct.name}.${f.name}`, 'input field missing');
        else if (!inputCompatible(s.type, f.type)) gaps.set(`${ct.name}.${f.name}`, `type ${String(s.type)} is not compatible with ${String(f.type)}`);
      }
      for (const s of Object.values(sf)) if (!ct.getFields()[s.name] && isNonNullType(s.type) && s.defaultValue === undefined) gaps.set(`${ct.name}.${s.name}`, 'extra required input field');
      continue;
    }
    if (isObjectType(ct) || isInterfaceType(ct)) {
      if ((isObjectType(ct) && !isObjectType(st)) || (isInterfaceType(ct) && !isInterfaceType(st))) { gaps.set(ct.name, 'wrong kind of type'); continue; }
      const sObj = st as typeof ct;
      const ifaces = new Set(sObj.getInterfaces().map((i) => i.name));
      for (const i of ct.getInterfaces()) if (!ifaces.has(i.name)) gaps.set(`${ct.name} implements ${i.name}`, 'interface missing');
      const sf = sObj.getFields();
      for (const f of Object.values(ct.getFields())) {
        const s = sf[f.name];
        if (!s) { gaps.set(`${ct.name}.${f.name}`, 'field missing'); continue; }
        if (!outputCompatible(s.type, f.type)) gaps.set(`${ct.name}.${f.name}`, `type ${String(s.type)} is not compatible with ${String(f.type)}`);
        for (const a of f.args) {
          const sa = s.args.find((x) => x.name === a.name);
          if (!sa) gaps.set(`${ct.name}.${f.name}(${a.name})`, 'argument missing');
          else if (!inputCompatible(sa.type, a.type)) gaps.set(`${ct.name}.${f.name}(${a.name})`, `type ${String(sa.type)} is not compatible with ${String(a.type)}`);
        }
        for (const sa of s.args) {
          if (!f.args.some((a) => a.name === sa.name) && isNonNullType(sa.type) && sa.defaultValue === undefined) gaps.set(`${ct.name}.${f.name}(${sa.name})`, 'extra required argument');
        }
      }
    }
  }
  return gaps;
}
