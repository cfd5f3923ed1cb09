/** The shape of CloudStack's listApis entries, as kept in the generated reference module. */
export interface ReferenceField {
  name: string;
  type: string;
  description: string;
  response?: ReferenceField[];
}

export interface ReferenceParamDoc {
  description: string;
  length: number;
  related?: string;
  since?: string;
}

export interface ReferenceApi {
  name: string;
  description: string;
  isasync: boolean;
  related: string;
  since?: string;
  params: Record<string, ReferenceParamDoc>;
  response: ReferenceField[];
}
